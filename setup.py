"""Package discovery for posgrade (the rest of the metadata is in pyproject.toml).

grader/ holds the `posgrade` package; exercises/ and solutions/ ship inside it as
`posgrade.exercises` and `posgrade.solutions`, so `init` and the grader find them from an
installed wheel as well as from a checkout. Packages are discovered, never listed by hand,
so a new subpackage cannot be left out of the wheel (tests/test_packaging.py checks the
built wheel against the source tree).
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "grader", "posgrade.exercises": "exercises", "posgrade.solutions": "solutions"},
    packages=find_packages("grader", include=["posgrade", "posgrade.*"]) + ["posgrade.exercises", "posgrade.solutions"],
)
