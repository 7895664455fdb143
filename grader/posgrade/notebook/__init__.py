"""Notebooks as workspaces: grading from inside a running Jupyter kernel.

    %load_ext posgrade            # in a notebook (or IPython): registers the %posgrade magic
    %posgrade check rope          # grades the kernel's current definitions for rope
    posgrade.notebook.check("rope")   # the same as a plain function; returns the Report

What is graded is what the kernel holds now, taken from its cell history (kernel.py): every
cell the kernel ran, in order, keeps only its imports, function and class definitions and
constants (a name the kernel still has); a cell that failed to parse, scratch code, prints and
calls are left out, so a cell that once raised never stops grading. The module built from them
is written into a temporary workspace beside the other exercises of the notebook's folder and
graded by `posgrade check` in a child process, the same GradingSession path as the command line:
learner code runs in that process's worker, never in the kernel, so a hang or a crash there
costs a time-out in the report, never the kernel. The report is the self-contained HTML page of
`--html` (heatmaps included), shown in an iframe so its styles stay out of the notebook, with
the plain-text report as its text fallback.

One notebook per exercise (`posgrade init DIR --notebook`, kit/notebooks.py writes them): each
exercise is graded, reset and backed up as one file (<name>.ipynb where <name>.py would be), so
`posgrade check rope --workspace DIR` grades the saved notebook exactly as it grades a .py file,
and a learner's kernel holds one exercise's scratch state, not the whole kit's.

`%load_ext posgrade` also makes the notebook's folder importable as a package for the kernel, so
the stub's relative imports (`from .rope import apply_rope` in attention) find the learner's own
rope.py or rope.ipynb there, as the grader's worker finds them.

Needs IPython (a kernel) and nbformat: pip install 'posgrade[notebook]'.

May import: loop, reporting, grading, diagnosis, kit, results (it is the top layer: nothing of
posgrade imports it, except the root package's load_ipython_extension, lazily).
"""


def check(name, seed=None, timeout=10.0, device="cpu", display=True):
    """Grade the running kernel's definitions for exercise `name`; the Report (shown when
    display is true). See posgrade.notebook.kernel.check."""
    from posgrade.notebook import kernel

    return kernel.check(name, seed=seed, timeout=timeout, device=device, display=display)


def load_ipython_extension(ipython):
    """`%load_ext posgrade`: the %posgrade magic, and relative imports from the notebook's folder."""
    from posgrade.notebook import kernel

    kernel.load(ipython)
