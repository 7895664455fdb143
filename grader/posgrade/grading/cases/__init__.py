"""Hidden cases: one pytest file per exercise, run by posgrade.grading.plugin."""
