"""posgrade: exercises on positional encodings and attention, with an autograder.

The package is layered; each subpackage imports only the layers below it (tests/test_layers.py
checks it, reading this line):

Layers, top to bottom: notebook > cli > classroom > loop > reporting > grading > diagnosis > kit > results

    notebook/    inside a Jupyter kernel: %load_ext posgrade, the %posgrade magic, posgrade.notebook.check(name)
    cli/         click commands only: parse, call one function below, map to an exit code
    classroom/   grade-batch, CI files for GitHub Classroom and Gradescope, instructor case and visibility files
    loop/        the learner's loop: check (grade, write result files, exit code), watch, init/hint/reveal/reset
    reporting/   the terminal report, the HTML page and each classroom format (one module each), templates/
    grading/     the grading session, the worker process and its proxy, the pytest plugin, cases/ (hidden cases)
    diagnosis/   comparing results (tolerances, "looks like" patterns) and the catalogs of known mistakes
    kit/         the exercise catalog (the one table), workspaces and progress, probes and the wire format
    results.py   the result model (plain dataclasses), importing nothing of posgrade
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """`%load_ext posgrade` in IPython or Jupyter: the %posgrade magic (posgrade.notebook)."""
    from posgrade.notebook import load_ipython_extension as load

    load(ipython)
