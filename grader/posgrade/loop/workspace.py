"""The learner's workspace commands below the CLI: init, list, hint, reveal and reset.

Each returns the lines to print (or raises CheckError, the CLI's exit code 2); none of them
ever writes into a learner's file, except reset (after a backup) and init (which refuses to
overwrite).
"""

import shutil
from pathlib import Path

from posgrade.kit import catalog, state
from posgrade.loop.check import CheckError, exercise


def workspace(option):
    try:
        return state.find_workspace(option)
    except state.WorkspaceError as err:
        raise CheckError(str(err)) from None


def init(directory):
    """Copy fresh stubs into directory; lines to print. Never overwrites a file."""
    dest = Path(directory).expanduser()
    if dest.exists() and not dest.is_dir():
        raise CheckError(f"{dest} exists and is not a folder")
    if dest.exists() and state.is_kit_dir(dest):
        raise CheckError(f"{dest} is the kit's own folder; run `posgrade init` in a folder of your own")
    stubs = state.kit_dir("exercises")
    dest.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for ex in catalog.EXERCISES:
        target = dest / ex.file
        if target.exists():
            kept.append(ex.file)
            continue
        shutil.copyfile(stubs / ex.file, target)
        copied.append(ex.file)
    if not copied:
        raise CheckError(f"{dest} already has every exercise file; nothing was copied "
                         f"(`posgrade reset NAME` gives a fresh stub and backs yours up)")
    state.Progress(dest).save()
    lines = [f"Copied {len(copied)} exercise file{'s' * (len(copied) > 1)} into {dest}: {', '.join(copied)}"]
    if kept:
        lines.append(f"Kept your own {', '.join(kept)} as they were.")
    hint = "" if str(directory) == "exercises" else f" --workspace {directory}"
    lines.append(f"Next: edit {dest / catalog.EXERCISES[0].file}, then run `posgrade check{hint}`.")
    return lines


def listing(option):
    """The exercises in order with the learner's status; lines to print."""
    try:
        progress = state.Progress(state.find_workspace(option))
    except state.WorkspaceError:
        progress = None
    lines = [f"  #  {'exercise':<14}{'points':>6}  {'status':<24}title"]
    for i, ex in enumerate(catalog.EXERCISES):
        st = progress.of(ex.name) if progress else {}
        if st.get("passed"):
            status = f"passed ({st['best']:g})"
        elif st.get("best") is not None:
            status = f"best {st['best']:g} / {ex.points}"
        else:
            status = "not started" if progress else "-"
        title = ex.title + (" (bonus)" if ex.bonus else "")
        lines.append(f"  {i:<2} {ex.name:<14}{ex.points:>6}  {status:<24}{title}")
    if progress is None:
        lines.append("\nNo workspace found: run `posgrade init` to start.")
    return lines


def hint(name, option):
    """The hints shown so far plus the next one; lines to print."""
    ex = exercise(name)
    progress = state.Progress(workspace(option))
    st = progress.of(ex.name)
    shown = min(st["hints_shown"] + 1, len(ex.hints))
    lines = [f"Hint {i}/{len(ex.hints)}: {text}" for i, text in enumerate(ex.hints[:shown], 1)]
    if shown == len(ex.hints):
        lines.append(f"That was the last hint; `posgrade reveal {ex.name}` shows the reference solution.")
    st["hints_shown"] = shown
    progress.save()
    return lines


def reveal(name, option):
    """The reference solution with line numbers (recorded as revealed); lines to print."""
    ex = exercise(name)
    progress = state.Progress(workspace(option))
    st = progress.of(ex.name)
    source = (state.kit_dir("solutions") / ex.file).read_text()
    width = len(str(source.count("\n") + 1))
    lines = [f"{i:>{width}}  {line}" for i, line in enumerate(source.splitlines(), 1)]
    if not st["revealed"]:
        st["revealed"] = True
        st["revealed_before_pass"] = not st["passed"]
    progress.save()
    return lines


def reset(name, option):
    """A fresh stub for name; the learner's file is backed up first. Lines to print."""
    ex = exercise(name)
    ws = workspace(option)
    if state.is_kit_dir(ws):
        raise CheckError(f"{ws} is the kit's own folder; reset works on a workspace made by `posgrade init`")
    progress = state.Progress(ws)
    target = ws / ex.file
    lines = []
    if target.exists():
        lines.append(f"Backed up your {ex.file} to {progress.backup(ex.name)}")
    shutil.copyfile(state.kit_dir("exercises") / ex.file, target)
    lines.append(f"{target} is a fresh stub again.")
    return lines
