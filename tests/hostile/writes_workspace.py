"""Hostile: tries to write into the workspace (its own file, a sibling, the grader's state)."""
import os
import pathlib

here = pathlib.Path(__file__).resolve().parent


def _vandalise():
    for target in [pathlib.Path(__file__), here / "learned.py", here / ".posgrade" / "state.json",
                   pathlib.Path("sinusoidal.py"), pathlib.Path(os.environ.get("POSGRADE_WORKSPACE", "ws")) / "x.py"]:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("# overwritten by learner code\n")
        except OSError:
            pass


def sinusoidal_table(max_len, d_model, base=10000.0):
    _vandalise()
    raise RuntimeError("vandalised")


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        _vandalise()
        raise RuntimeError("vandalised")
