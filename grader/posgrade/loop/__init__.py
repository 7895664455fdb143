"""The learner's loop, below the CLI: what each learner command does.

    check.py       grade a workspace (through grading.session), write result files, the text and exit code;
                   grade-batch grades each submission with the same functions
    watch.py       re-grade on every save, showing what changed
    workspace.py   init, list, hint, reveal, reset

May import: reporting, grading, diagnosis, kit, results.
"""
