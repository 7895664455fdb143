"""Workspaces: finding one, and the grader's own progress file inside it.

A workspace is a folder of exercise files (<name>.py). The grader only reads those; what it
remembers (best scores, hints shown, solutions revealed) lives in <workspace>/.posgrade/.
The kit's own exercises/ and solutions/ folders can be graded but are never written to.
"""

import datetime
import json
import os
import shutil
from pathlib import Path

import posgrade

STATE_DIR = ".posgrade"

# The workspace format: bumped when the exercise files' interface (the names and signatures the
# grader calls, DESIGN.md) changes, so a workspace made for another interface is refused with an
# explanation instead of failing every case. `posgrade init` records it in .posgrade/state.json.
WORKSPACE_FORMAT = 1
FORMAT_CHANGES = {  # format -> what changed in it, for the message to a learner with an older workspace
    1: "the seven exercises of posgrade 0.1 (batches, sinusoidal, learned, relative, rope, attention, alibi)",
}


class WorkspaceError(Exception):
    """A workspace problem the CLI reports as a usage error (exit code 2)."""


def kit_dir(which):
    """The installed kit's exercises/ or solutions/ folder."""
    import importlib

    return Path(importlib.import_module(f"posgrade.{which}").__file__).resolve().parent


def find_workspace(option=None):
    """--workspace, else $POSGRADE_WORKSPACE, else ./exercises; must exist."""
    raw = option or os.environ.get("POSGRADE_WORKSPACE") or "exercises"
    path = Path(raw).expanduser()
    if not path.is_dir() and raw == "solutions":
        return kit_dir("solutions")  # `--workspace solutions` grades the reference itself
    source = "--workspace" if option else ("$POSGRADE_WORKSPACE" if os.environ.get("POSGRADE_WORKSPACE")
                                           else "the default ./exercises")
    if path.is_file():
        raise WorkspaceError(f"{source} {raw} is a file; a workspace is the folder that holds the exercise files: "
                             f"pass --workspace {path.parent}" + (f" (and the exercise's name, {path.stem})"
                                                                  if path.suffix in (".py", ".ipynb") else ""))
    if not path.is_dir():
        raise WorkspaceError(f"no workspace at {path} (from {source}); run `posgrade init` to create one, "
                             f"or pass --workspace DIR")
    return path.resolve()


def is_kit_dir(path):
    path = Path(path).resolve()
    return path in (kit_dir("exercises"), kit_dir("solutions"))


def is_kit_stub_dir(path):
    """path is the kit's own exercises/ folder (its stubs): graded as stubs, never written to."""
    return Path(path).resolve() == kit_dir("exercises")


KIT_STUBS_NOTE = ("this is the kit's own stub folder (./exercises of posgrade itself): it is graded as it is, "
                  "and nothing is saved here (no progress, no hints). Make a workspace of your own with "
                  "`posgrade init my-work`, then pass --workspace my-work (or set POSGRADE_WORKSPACE=my-work)")


class Progress:
    """The workspace's .posgrade/state.json: per exercise best score, hints shown, revealed."""

    def __init__(self, workspace):
        self.workspace = Path(workspace)
        self.read_only = is_kit_dir(workspace)
        self.path = self.workspace / STATE_DIR / "state.json"
        self.data = {"kit_version": posgrade.__version__, "workspace_format": WORKSPACE_FORMAT, "exercises": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                pass  # a broken state file only loses progress, never blocks grading

    def check_format(self):
        """WorkspaceError when the workspace was made for another exercise interface (see
        WORKSPACE_FORMAT). A workspace without the key predates it: format 1."""
        made = self.data.get("workspace_format", 1)
        by = self.data.get("kit_version", "an unknown version")
        if not isinstance(made, int) or made == WORKSPACE_FORMAT:
            return
        if made > WORKSPACE_FORMAT:
            raise WorkspaceError(
                f"{self.workspace} was made by posgrade {by} (workspace format {made}), newer than this posgrade "
                f"{posgrade.__version__} (format {WORKSPACE_FORMAT}); upgrade posgrade (pip install -U posgrade)")
        changes = "; ".join(FORMAT_CHANGES[f] for f in range(made + 1, WORKSPACE_FORMAT + 1) if f in FORMAT_CHANGES)
        raise WorkspaceError(
            f"{self.workspace} was made by posgrade {by} (workspace format {made}); this posgrade "
            f"{posgrade.__version__} uses format {WORKSPACE_FORMAT} ({changes}): start a new workspace with "
            f"`posgrade init NEWDIR` and copy your code across (this one is left as it is)")

    def todo(self):
        """[the first exercise not yet passed]; every exercise once all have passed."""
        from posgrade.kit import catalog

        left = [n for n in catalog.names() if not self.of(n)["passed"]]
        return left[:1] or catalog.names()

    def of(self, name):
        return self.data.setdefault("exercises", {}).setdefault(
            name, {"best": None, "max": None, "passed": False, "hints_shown": 0, "revealed": False,
                   "revealed_before_pass": False})

    def revealed_before_pass(self, name):
        """`posgrade reveal NAME` showed the solution before NAME was passed (shown in every result format)."""
        st = self.data.get("exercises", {}).get(name, {})
        return bool(st.get("revealed") and st.get("revealed_before_pass"))

    def record(self, result):
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for ex in result.exercises:
            if not ex.graded:
                continue
            st = self.of(ex.name)
            st["last"], st["max"], st["last_checked"] = ex.score, ex.points, now
            st["best"] = ex.score if st["best"] is None else max(st["best"], ex.score)
            st["passed"] = st["passed"] or ex.passed
        self.save()

    def save(self):
        if self.read_only:
            return
        self.path.parent.mkdir(exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)

    def reset(self, name):
        """Forget name's scores (after `posgrade reset NAME`): it is not passed any more, and its
        best so far is kept as best_before_reset. Hints shown and solutions revealed stay."""
        st = self.of(name)
        if st.get("best") is not None:
            st["best_before_reset"] = max(st["best"], st.get("best_before_reset") or 0)
        st.update(best=None, last=None, passed=False)
        self.save()

    def backup(self, name, suffix=".py"):
        """Copy the learner's file (<name><suffix>) into .posgrade/backups/; returns the copy's path."""
        src = self.workspace / f"{name}{suffix}"
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        dest = self.workspace / STATE_DIR / "backups" / f"{name}-{stamp}{suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        return dest
