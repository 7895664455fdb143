"""The teacher's side: grading a class and the CI files of classroom systems.

    batch.py        grade-batch: many submissions, in parallel grader processes; class.csv/json/html
    ci.py           the GitHub Classroom workflow and the Gradescope autograder files
    instructor.py   an instructor's private case files (--cases) and visibility file (--visibility)

May import: loop, reporting, grading, diagnosis, kit, results.
"""
