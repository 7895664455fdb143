"""The `posgrade` command: argument parsing and exit codes only.

Exit codes: 0 every graded case passed (or the command did its job), 1 some case failed
(or a confirmation was declined), 2 a usage or workspace error.
"""

import secrets
import shutil
import sys
from pathlib import Path

import click

from posgrade import catalog, state


class UsageFailure(click.ClickException):
    """A one-line error for the user, exit code 2."""

    exit_code = 2


def _workspace(value):
    try:
        return state.find_workspace(value)
    except state.WorkspaceError as err:
        raise UsageFailure(str(err)) from None


def _exercise(name):
    try:
        return catalog.get(name)
    except KeyError as err:
        raise UsageFailure(err.args[0]) from None


workspace_option = click.option(
    "--workspace", "-w", metavar="DIR", default=None,
    help="The folder of exercise files (default: $POSGRADE_WORKSPACE, else ./exercises). "
         "`--workspace solutions` grades the reference solutions.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="posgrade")
def main():
    """Exercises on positional encodings and attention, with an autograder.

    Start with `posgrade init`, edit the files it creates, and run `posgrade check`.
    """


@main.command()
@click.argument("directory", default="exercises", required=False)
def init(directory):
    """Copy fresh exercise stubs into DIRECTORY (default ./exercises); never overwrites a file."""
    dest = Path(directory).expanduser()
    if dest.exists() and not dest.is_dir():
        raise UsageFailure(f"{dest} exists and is not a folder")
    if dest.exists() and state.is_kit_dir(dest):
        raise UsageFailure(f"{dest} is the kit's own folder; run `posgrade init` in a folder of your own")
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
        raise UsageFailure(f"{dest} already has every exercise file; nothing was copied "
                           f"(`posgrade reset NAME` gives a fresh stub and backs yours up)")
    state.Progress(dest).save()
    click.echo(f"Copied {len(copied)} exercise file{'s' * (len(copied) > 1)} into {dest}: {', '.join(copied)}")
    if kept:
        click.echo(f"Kept your own {', '.join(kept)} as they were.")
    hint = "" if str(directory) == "exercises" else f" --workspace {directory}"
    click.echo(f"Next: edit {dest / catalog.EXERCISES[0].file}, then run `posgrade check{hint}`.")


@main.command("list")
@workspace_option
def list_(workspace):
    """The exercises in order, with your status and best score."""
    try:
        progress = state.Progress(state.find_workspace(workspace))
    except state.WorkspaceError:
        progress = None
    click.echo(f"  #  {'exercise':<12}{'points':>6}  {'status':<24}title")
    for i, ex in enumerate(catalog.EXERCISES):
        st = progress.of(ex.name) if progress else {}
        if st.get("passed"):
            status = f"passed ({st['best']:g})"
        elif st.get("best") is not None:
            status = f"best {st['best']:g} / {ex.points}"
        else:
            status = "not started" if progress else "-"
        title = ex.title + (" (bonus)" if ex.bonus else "")
        click.echo(f"  {i}  {ex.name:<12}{ex.points:>6}  {status:<24}{title}")
    if progress is None:
        click.echo("\nNo workspace found: run `posgrade init` to start.")


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Grade every exercise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="auto", show_default=True,
              help="auto: CPU, and CUDA where present (else CUDA cases show as skipped); all: CPU and CUDA, "
                   "a GPU required; cuda: CUDA only.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the random inputs (default: a new one, printed in the report).")
@click.option("--json", "json_path", metavar="PATH", default=None, help="Also write the results as JSON to PATH.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of your code may take.")
@click.option("--verbose", "-v", is_flag=True, help="Explain every failure, not only the first ones.")
@workspace_option
def check(names, all_, device, seed, json_path, timeout, verbose, workspace):
    """Grade NAMES (default: the first exercise not yet passed)."""
    if names and all_:
        raise UsageFailure("give exercise names or --all, not both")
    ws = _workspace(workspace)
    for name in names:
        _exercise(name)
    progress = state.Progress(ws)
    if all_:
        names = catalog.names()
    elif not names:
        todo = [n for n in catalog.names() if not progress.of(n)["passed"]]
        names = todo[:1] or catalog.names()
    missing = [catalog.get(n).file for n in names if not (ws / catalog.get(n).file).exists()]
    if missing:
        made_by = progress.data.get("kit_version", "an older posgrade")
        raise UsageFailure(f"{ws} has no {', '.join(missing)} (the workspace was made by posgrade {made_by}); "
                           f"`posgrade init {ws}` adds the missing stubs and keeps your files")
    if json_path:
        _check_writable(json_path, "--json")
    if seed is None:
        seed = secrets.randbelow(100000)

    from posgrade import runner  # no torch here: the worker starts first and imports torch meanwhile

    worker = runner.start_worker(ws, runner.Limits(seconds=timeout), device=device)
    try:
        result = runner.grade(runner.GradeRequest(str(ws), list(dict.fromkeys(names)), seed, device), worker)
    except ValueError as err:
        raise UsageFailure(str(err)) from None
    finally:
        worker.close()

    from posgrade import report

    progress.record(result)
    if json_path:
        Path(json_path).write_text(report.to_json(result))
    unicode = (getattr(sys.stdout, "encoding", "") or "").lower().startswith("utf")
    rerun = "posgrade check " + ("--all" if all_ else " ".join(names))
    if workspace:
        rerun += f" --workspace {workspace}"
    click.echo(report.terminal(result, verbose=verbose, unicode=unicode, command=rerun), nl=False)
    sys.exit(0 if result.passed else 1)


def _check_writable(path, option):
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageFailure(f"{option} {path} is a folder; give a file path")
    if not parent.is_dir():
        raise UsageFailure(f"{option} {path}: the folder {parent} does not exist")
    import os

    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise UsageFailure(f"{option} {path} is not writable")


@main.command()
@click.argument("name")
@workspace_option
def hint(name, workspace):
    """Show the next hint for NAME (each call reveals one more)."""
    ex = _exercise(name)
    progress = state.Progress(_workspace(workspace))
    st = progress.of(ex.name)
    shown = min(st["hints_shown"] + 1, len(ex.hints))
    for i, text in enumerate(ex.hints[:shown], 1):
        click.echo(f"Hint {i}/{len(ex.hints)}: {text}")
    if shown == len(ex.hints):
        click.echo(f"That was the last hint; `posgrade reveal {ex.name}` shows the reference solution.")
    st["hints_shown"] = shown
    progress.save()


@main.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@workspace_option
def reveal(name, yes, workspace):
    """Show the reference solution of NAME, with line numbers."""
    ex = _exercise(name)
    progress = state.Progress(_workspace(workspace))
    st = progress.of(ex.name)
    if not yes and not click.confirm(f"Show the reference solution of {ex.name}? Trying one more hint "
                                     f"first often teaches more", default=False):
        click.echo("Not shown.")
        sys.exit(1)
    source = (state.kit_dir("solutions") / ex.file).read_text()
    width = len(str(source.count("\n") + 1))
    for i, line in enumerate(source.splitlines(), 1):
        click.echo(f"{i:>{width}}  {line}")
    if not st["revealed"]:
        st["revealed"] = True
        st["revealed_before_pass"] = not st["passed"]
    progress.save()


@main.command()
@click.argument("name")
@workspace_option
def reset(name, workspace):
    """Replace your NAME file with a fresh stub; your file is backed up first."""
    ex = _exercise(name)
    ws = _workspace(workspace)
    if state.is_kit_dir(ws):
        raise UsageFailure(f"{ws} is the kit's own folder; reset works on a workspace made by `posgrade init`")
    progress = state.Progress(ws)
    target = ws / ex.file
    if target.exists():
        backup = progress.backup(ex.name)
        click.echo(f"Backed up your {ex.file} to {backup}")
    shutil.copyfile(state.kit_dir("exercises") / ex.file, target)
    click.echo(f"{target} is a fresh stub again.")
