"""The learner's workspace commands below the CLI: init, list, hint, reveal and reset.

Each returns the lines to print (or raises CheckError, the CLI's exit code 2); none of them
ever writes into a learner's file, except reset (after a backup) and init (which refuses to
overwrite).
"""

from pathlib import Path

from posgrade.kit import catalog, notebooks, state
from posgrade.loop.check import CheckError, exercise


def workspace(option):
    try:
        return state.find_workspace(option)
    except state.WorkspaceError as err:
        raise CheckError(str(err)) from None


def fresh_file(ex, suffix):
    """The text of a fresh stub of ex as a .py file or as a notebook (suffix ".ipynb")."""
    stub = (state.kit_dir("exercises") / ex.file).read_text()
    if suffix != ".ipynb":
        return stub
    try:
        return notebooks.stub_notebook(catalog.names().index(ex.name), ex, stub)
    except notebooks.NotebookError as err:
        raise CheckError(str(err)) from None


def init(directory, notebook=False):
    """Copy fresh stubs into directory (as notebooks, one per exercise, with notebook=True); lines
    to print. Never overwrites a file, and an exercise that has either file is kept."""
    dest = Path(directory).expanduser()
    if dest.exists() and not dest.is_dir():
        raise CheckError(f"{dest} exists and is not a folder")
    if dest.exists() and state.is_kit_dir(dest):
        raise CheckError(f"{dest} is the kit's own folder; run `posgrade init` in a folder of your own")
    suffix = ".ipynb" if notebook else ".py"
    texts = {ex.name: fresh_file(ex, suffix) for ex in catalog.EXERCISES}  # before any file is written
    dest.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for ex in catalog.EXERCISES:
        have = notebooks.exercise_file(dest, ex.name)
        if have is not None:
            kept.append(have.name)
            continue
        (dest / f"{ex.name}{suffix}").write_text(texts[ex.name], encoding="utf-8")
        copied.append(f"{ex.name}{suffix}")
    if not copied:
        raise CheckError(f"{dest} already has every exercise file; nothing was copied "
                         f"(`posgrade reset NAME` gives a fresh stub and backs yours up)")
    state.Progress(dest).save()
    lines = [f"Copied {len(copied)} exercise file{'s' * (len(copied) > 1)} into {dest}: {', '.join(copied)}"]
    if kept:
        lines.append(f"Kept your own {', '.join(kept)} as they were.")
    hint = "" if str(directory) == "exercises" else f" --workspace {directory}"
    first = notebooks.exercise_file(dest, catalog.EXERCISES[0].name)
    if notebook:
        lines.append(f"Next: open {first} in Jupyter, complete the stub, and run its last cell "
                     f"(`%posgrade check {catalog.EXERCISES[0].name}`); or run `posgrade check{hint}`.")
    else:
        lines.append(f"Next: edit {first}, then run `posgrade check{hint}`.")
    return lines


def listing(option):
    """The exercises in order with the learner's status; lines to print. A workspace named with
    --workspace (or $POSGRADE_WORKSPACE) must exist (CheckError); a missing default ./exercises
    only shows the table and how to start."""
    import os

    try:
        progress = state.Progress(state.find_workspace(option))
    except state.WorkspaceError as err:
        if option or os.environ.get("POSGRADE_WORKSPACE"):
            raise CheckError(str(err)) from None
        progress = None
    lines = [f"  #  {'exercise':<14}{'points':>6}  {'status':<24}title"]
    for i, ex in enumerate(catalog.EXERCISES):
        st = progress.of(ex.name) if progress else {}
        if st.get("passed"):
            status = f"passed ({round(st['best'], 1):g})"
        elif st.get("best") is not None:
            status = f"best {round(st['best'], 1):g} / {ex.points}"
        elif st.get("best_before_reset") is not None:
            status = f"reset (best was {round(st['best_before_reset'], 1):g})"
        else:
            status = "not started" if progress else "-"
        title = ex.title + (" (bonus)" if ex.bonus else "")
        lines.append(f"  {i:<2} {ex.name:<14}{ex.points:>6}  {status:<24}{title}")
    if progress is None:
        lines.append(f"\nNo workspace at {Path('exercises').resolve()} (the default ./exercises): run "
                     "`posgrade init` to start.")
    elif state.is_kit_stub_dir(progress.workspace):
        lines.append(f"\nNote: {state.KIT_STUBS_NOTE}.")
    return lines


def hint(name, option):
    """The hints shown so far plus the next one; lines to print."""
    ex = exercise(name)
    ws = workspace(option)
    progress = state.Progress(ws)
    st = progress.of(ex.name)
    shown = min(st["hints_shown"] + 1, len(ex.hints))
    lines = [f"Hint {i}/{len(ex.hints)}: {text}" for i, text in enumerate(ex.hints[:shown], 1)]
    if shown == len(ex.hints):
        lines.append(f"That was the last hint; `posgrade reveal {ex.name}` shows the reference solution.")
    if progress.read_only:  # the kit's own folder: nothing is saved, so the next call shows hint 1 again
        why = state.KIT_STUBS_NOTE if state.is_kit_stub_dir(ws) else "this is the kit's own folder: nothing is saved here"
        lines.append(f"Note: {why}. Here every `posgrade hint {ex.name}` shows hint 1 again.")
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


def _same_code(path, fresh):
    """The file at path holds the fresh stub (a notebook: the same cells' sources)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".ipynb" or text == fresh:
        return text == fresh
    import json

    def sources(raw):
        try:
            return [(c.get("cell_type"), "".join(c.get("source", ""))) for c in json.loads(raw).get("cells", [])]
        except (ValueError, AttributeError):
            return None

    return sources(text) is not None and sources(text) == sources(fresh)


def reset(name, option):
    """A fresh stub for name (a notebook again where the learner's file is a notebook); the
    learner's file is backed up first, unless it is a fresh stub already. Its recorded scores
    are forgotten (`posgrade list` shows it not passed). Lines to print."""
    ex = exercise(name)
    ws = workspace(option)
    if state.is_kit_dir(ws):
        raise CheckError(f"{ws} is the kit's own folder; reset works on a workspace made by `posgrade init`")
    progress = state.Progress(ws)
    target = notebooks.exercise_file(ws, ex.name) or ws / ex.file
    fresh = fresh_file(ex, target.suffix)
    lines = []
    if target.exists() and _same_code(target, fresh):
        lines.append(f"{target} is a fresh stub already; nothing to back up.")
    else:
        if target.exists():
            lines.append(f"Backed up your {target.name} to {progress.backup(ex.name, target.suffix)}")
        target.write_text(fresh, encoding="utf-8")
        lines.append(f"{target} is a fresh stub again.")
    if progress.of(ex.name).get("best") is not None or progress.of(ex.name).get("passed"):
        progress.reset(ex.name)
        lines.append(f"Its recorded score is cleared: `posgrade list` shows {ex.name} as not passed.")
    return lines
