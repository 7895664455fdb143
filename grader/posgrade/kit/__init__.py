"""The kit: what the exercises are, apart from grading them.

    catalog.py   the one table of exercises: names, order, points, hints (the CLI, runner and reporters read it)
    state.py     workspaces (finding one, the kit's own folders) and the learner's progress file
    notebooks.py a notebook as an exercise file: the module its code cells make (never run), and the
                 notebook `posgrade init --notebook` writes (nbformat, imported only when notebooks are used)
    probes.py    how a module exercise is driven (build, load weights, forward, backward), run in any process
    wire.py      how values cross between the grader and the worker process (tensors as plain data)

May import: results, and nothing else of posgrade (torch only where a probe needs it).
"""
