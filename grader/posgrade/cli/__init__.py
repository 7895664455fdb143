"""The `posgrade` command: argument parsing and exit codes only.

Exit codes: 0 every graded case passed (or the command did its job), 1 some case failed
(or a confirmation was declined), 2 a usage or workspace error.
"""

import os
import secrets
import shutil
import sys
from pathlib import Path

import click

from posgrade.kit import catalog, state
from posgrade.reporting import formats


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


def _names(names, all_):
    """Validate exercise names given on the command line (against --all and the catalog)."""
    if names and all_:
        raise UsageFailure("give exercise names or --all, not both")
    for name in names:
        _exercise(name)


def _open_workspace(workspace):
    """(workspace path, its Progress), refusing a workspace made for another exercise interface."""
    ws = _workspace(workspace)
    progress = state.Progress(ws)
    try:
        progress.check_format()
    except state.WorkspaceError as err:
        raise UsageFailure(str(err)) from None
    return ws, progress


def _require_files(ws, names, progress):
    missing = [catalog.get(n).file for n in names if not (ws / catalog.get(n).file).exists()]
    if missing:
        made_by = progress.data.get("kit_version", "an older posgrade")
        raise UsageFailure(f"{ws} has no {', '.join(missing)} (the workspace was made by posgrade {made_by}); "
                           f"`posgrade init {ws}` adds the missing stubs and keeps your files")


def _unicode():
    return (getattr(sys.stdout, "encoding", "") or "").lower().startswith("utf")


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


def run():
    """The console script: main(), then, once torch is loaded, an exit that skips the interpreter's
    teardown of torch's objects (0.7 s after a grading run, measured; everything is written and
    every worker stopped before main() returns)."""
    try:
        main()
    except SystemExit as done:
        if "torch" not in sys.modules:
            raise
        code = done.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


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


class _PairedOptions(click.Command):
    """Records the order in which --format and --output appear, so that each --output can
    belong to the --format just before it (click keeps each option's values, not their mix)."""

    def parse_args(self, ctx, args):
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta["posgrade.order"] = [p.name for p in order if p.name in ("formats_", "outputs")]
        except click.UsageError:
            pass  # the real parse below reports it
        return super().parse_args(ctx, args)


@main.command(cls=_PairedOptions)
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Grade every exercise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="auto", show_default=True,
              help="auto: CPU, and CUDA where present (else CUDA cases show as skipped); all: CPU and CUDA, "
                   "a GPU required; cuda: CUDA only.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the random inputs (default: a new one, printed in the report).")
@click.option("--json", "json_path", metavar="PATH", default=None, help="Also write the results as JSON to PATH.")
@click.option("--html", "html_path", metavar="PATH", default=None,
              help="Also write a self-contained HTML report with heatmaps of mismatched outputs to PATH.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of your code may take.")
@click.option("--verbose", "-v", is_flag=True, help="Explain every failure, not only the first ones.")
@click.option("--format", "formats_", multiple=True, type=click.Choice(formats.FORMATS), metavar="FORMAT",
              help="Also write the results as FORMAT: json, gradescope, junit, github, exercism or html. Repeat it "
                   "for several; each writes to the --output that follows it, else to its default place.")
@click.option("--output", "outputs", multiple=True, metavar="PATH",
              help="Where the --format just before it writes.")
@click.option("--min-score", metavar="N|N%", default=None,
              help="Pass mark: exit 0 when the score is at least N points (or N% of the maximum), else 1. "
                   "Without it, exit 0 only when every graded case passed.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Also run an instructor's private case files (DIR/test_*.py), graded like the built-in ones.")
@click.option("--visibility", "visibility_path", metavar="FILE", default=None,
              help="JSON or TOML file that sets each case's Gradescope visibility (README: For instructors).")
@click.option("--allow-missing", is_flag=True,
              help="A missing exercise file scores 0 for that exercise instead of being a usage error (CI).")
@click.option("--no-save", is_flag=True,
              help="Do not record progress in the workspace's .posgrade/ (when grading someone else's work).")
@workspace_option
def check(names, all_, device, seed, json_path, html_path, timeout, verbose, formats_, outputs, min_score,
          cases_path, visibility_path, allow_missing, no_save, workspace):
    """Grade NAMES (default: the first exercise not yet passed)."""
    order = click.get_current_context().meta.get("posgrade.order", ["formats_"] * len(formats_))
    targets = _output_targets(formats_, outputs, json_path, order, html_path)
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY") or None
    plan = {"names": [n for n in names if n in catalog.names()] or (catalog.names() if all_ else []),
            "workspace": workspace or "", "seed": seed or 0, "visibility": None}
    try:
        pass_mark = _pass_mark(min_score)
        result, rerun = _check(plan, names, all_, device, seed, timeout, cases_path, visibility_path,
                               allow_missing, no_save, workspace, targets)
    except UsageFailure as err:
        _write_error(targets, err.format_message(), plan, summary_path)
        raise
    except Exception as err:  # the grader's own failure: still a result file, status "error"
        import traceback

        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or [""]
        what = lines[0] + (f" ... {lines[-1].removeprefix('E ').strip()}" if len(lines) > 1 else "")
        reason = f"internal error in the grader: {type(err).__name__}: {what}"
        _write_error(targets, reason + "\n\n" + traceback.format_exc(), plan, summary_path)
        click.echo(formats.escape_commands(f"posgrade: {reason}\n\n{traceback.format_exc()}"), err=True)
        sys.exit(1)

    _write_results(targets, result, plan["visibility"], summary_path)
    from posgrade.reporting import terminal as report

    text = report.terminal(result, verbose=verbose, unicode=_unicode(), command=rerun)
    if result.error:
        text += f"\nGrading did not finish: {result.error}\n"
    if pass_mark is not None:
        mark = pass_mark[0] * result.max_score / 100 if pass_mark[1] else pass_mark[0]
        reached = not result.error and result.score >= mark - 1e-9
        text += f"Pass mark {mark:g} / {result.max_score:g}: {'reached' if reached else 'not reached'}\n"
    for note in formats.reveal_notes(result):
        text += f"Note: {note}\n"
    if "github" in formats_ or os.environ.get("GITHUB_ACTIONS") == "true":
        text = formats.escape_commands(text)  # learner output must not read as a workflow command
    click.echo(text, nl=False)
    if pass_mark is not None:
        sys.exit(0 if reached else 1)
    sys.exit(0 if result.passed else 1)


def _check(plan, names, all_, device, seed, timeout, cases_path, visibility_path, allow_missing, no_save,
           workspace, targets, stop_signals=None):
    """The grading behind `check` (and each submission of `grade-batch`); fills plan (what an
    error result needs) as it learns it. With stop_signals (default: when there are result files
    to write), SIGTERM/SIGINT during grading end the run as an error result, not a crash."""
    from posgrade.classroom import instructor

    _names(names, all_)
    try:
        case_files = instructor.load_case_files(cases_path) if cases_path else []
        if visibility_path:
            plan["visibility"] = instructor.load_visibility(visibility_path)
    except instructor.InstructorError as err:
        raise UsageFailure(str(err)) from None
    ws, progress = _open_workspace(workspace)
    plan["workspace"] = str(ws)
    names = list(dict.fromkeys(catalog.names() if all_ else names or progress.todo()))
    plan["names"] = names
    if not allow_missing:
        _require_files(ws, names, progress)
    if seed is None:
        seed = secrets.randbelow(100000)
    plan["seed"] = seed
    revealed = {n: progress.revealed_before_pass(n) for n in names}

    from posgrade.grading import session as runner  # no torch here: the worker starts first and imports torch meanwhile

    extra = [str(cf.path) for cf in case_files if cf.exercise in names]
    _write_placeholders(targets, plan)
    stopped = _StopSignals(enabled=bool(targets) if stop_signals is None else stop_signals)
    worker = runner.start_worker(ws, runner.Limits(seconds=timeout), device=device)
    result = None
    try:
        with stopped:
            result = runner.grade(runner.GradeRequest(str(ws), names, seed, device, extra_cases=extra,
                                                      figures=any(fmt == "html" for fmt, _ in targets)), worker)
    except ValueError as err:
        raise UsageFailure(str(err)) from None
    except KeyboardInterrupt:
        if not stopped.signal:
            raise
    finally:
        worker.close()
    if stopped.signal:
        reason = (f"grading was stopped by {stopped.signal} before every case ran; the cases that ran "
                  f"are kept in the JSON result, and the run scores 0")
        if result is None:  # stopped before the cases started
            result = _error_result(reason, plan)
        result.error = reason
    instructor.mark_private(result, case_files)
    for ex in result.exercises:
        ex.revealed_before_pass = revealed.get(ex.name, False)
    if not no_save and not result.error:
        progress.record(result)

    rerun = "posgrade check " + ("--all" if all_ else " ".join(names))
    if workspace:
        rerun += f" --workspace {workspace}"
    if cases_path:
        rerun += f" --cases {cases_path}"
    return result, rerun


class _StopSignals:
    """While grading with result files to write, SIGTERM (a CI's time-out) and SIGINT end the run
    like Ctrl-C, and the run is then reported as an error, not as a partial score."""

    def __init__(self, enabled):
        self.enabled = enabled
        self.signal = None
        self._saved = {}

    def _handle(self, signum, frame):
        import signal

        self.signal = signal.Signals(signum).name
        raise KeyboardInterrupt

    def __enter__(self):
        import signal

        if self.enabled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        return False


def _output_targets(fmts, outputs, json_path, order, html_path=None):
    """[(format, path)]: each --output belongs to the --format just before it on the command
    line; a --format without one writes to its default place; --json PATH is --format json
    --output PATH, --html PATH is --format html --output PATH."""
    pairs, fi, oi = [], 0, 0
    for name in order:
        if name == "formats_":
            pairs.append([fmts[fi], None])
            fi += 1
        else:
            if not pairs or pairs[-1][1] is not None:
                where = f"after --format {pairs[-1][0]}, which already writes to {pairs[-1][1]}" if pairs else \
                    "before any --format"
                raise UsageFailure(f"--output {outputs[oi]} comes {where}; give each --format its own --output "
                                   "right after it (--format junit --output report.xml --format json ...)")
            pairs[-1][1] = outputs[oi]
            oi += 1
    targets = []
    for fmt, path in pairs:
        if path is None:
            path = formats.DEFAULT_OUTPUTS[fmt]
        if path is None:  # github: the step's output file
            path = os.environ.get("GITHUB_OUTPUT")
            if not path:
                raise UsageFailure("--format github appends to $GITHUB_OUTPUT, which is not set (is this a GitHub "
                                   "Actions step?); add --output PATH after it to write the line elsewhere")
        targets.append((fmt, path))
    if json_path:
        targets.append(("json", json_path))
    if html_path:
        targets.append(("html", html_path))
    seen = {}
    for fmt, path in targets:
        key = Path(path).expanduser().resolve()
        if key in seen:
            raise UsageFailure(f"--format {seen[key]} and --format {fmt} would both write {path}")
        seen[key] = fmt
        own = {("json", json_path): "--json", ("html", html_path): "--html"}
        _check_writable(path, own.get((fmt, path), f"--format {fmt}"))
    return targets


def _pass_mark(text):
    """(value, is_percent) from --min-score N or N%; None without it."""
    if text is None:
        return None
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise UsageFailure(f"--min-score {text}: give a number of points (40) or a percentage (50%)") from None
    if value < 0 or (percent and value > 100):
        raise UsageFailure(f"--min-score {text} is out of range")
    return value, percent


def _error_result(reason, plan):
    from posgrade.results import ExerciseResult, RunResult

    import posgrade

    return RunResult(workspace=plan["workspace"], seed=plan["seed"], devices=[], error=reason,
                     versions={"posgrade": posgrade.__version__},
                     exercises=[ExerciseResult(n, catalog.get(n).title, catalog.get(n).points, 0, 0)
                                for n in plan["names"]])


def _write_error(targets, reason, plan, summary_path):
    if targets:
        _write_results(targets, _error_result(reason, plan), plan.get("visibility"), summary_path)


def _write_results(targets, result, visibility, summary_path):
    for fmt, path in targets:
        try:
            formats.write(fmt, Path(path).expanduser(), result, visibility,
                          summary_path=summary_path if fmt == "github" else None)
        except OSError as err:
            click.echo(f"posgrade: could not write the {fmt} results to {path}: {err}", err=True)


def _write_placeholders(targets, plan):
    """Before grading: an "error" result in each file, replaced at the end, so that a run killed
    from outside (a CI's hard time-out) still leaves a result that says so."""
    reason = "grading did not finish: the grader was stopped before it could write its results"
    for fmt, path in targets:
        if fmt != "github":  # appending to $GITHUB_OUTPUT twice would be read twice
            try:
                formats.write(fmt, Path(path).expanduser(), _error_result(reason, plan), plan.get("visibility"))
            except OSError:
                pass


def _check_writable(path, option):
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise UsageFailure(f"{option} {path} is a folder; give a file path")
    if not parent.is_dir():
        raise UsageFailure(f"{option} {path}: the folder {parent} does not exist")
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


@main.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Grade every exercise on each save.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="cpu", show_default=True,
              help="Where to run the cases (cpu keeps each re-grade quick).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Random seed of the cases, kept for the whole session (default: random).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of your code may take.")
@click.option("--interval", type=click.FloatRange(min=0.05, max=10), default=0.3, show_default=True,
              help="Seconds between looks at the workspace's files.")
@click.option("--no-save", is_flag=True, help="Do not record progress in the workspace's .posgrade/.")
@workspace_option
def watch(names, all_, device, seed, timeout, interval, no_save, workspace):
    """Re-grade NAMES each time a workspace file is saved, showing what changed; Ctrl-C stops.

    Without NAMES it grades the first exercise not yet passed, and moves on when it passes."""
    from posgrade.loop import watch as watch_mod

    _names(names, all_)
    ws, progress = _open_workspace(workspace)
    _require_files(ws, names or catalog.names(), progress)
    try:
        from posgrade.grading import plugin

        plugin.resolve_devices(device)
    except ValueError as err:
        raise UsageFailure(str(err)) from None
    session = watch_mod.Session(ws, catalog.names() if all_ else list(dict.fromkeys(names)),
                                secrets.randbelow(100000) if seed is None else seed, device, timeout, interval,
                                save=not no_save, unicode=_unicode())
    watch_mod.run(session, lambda text: click.echo(text, nl=False))


@main.command("grade-batch")
@click.argument("directory")
@click.option("--exercise", "-e", "exercises", multiple=True, metavar="NAME",
              help="Grade only this exercise; repeat for several (default: every exercise).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Submissions graded at the same time.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of a student's code may take.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the random inputs, the same for every student (default: a new one, printed).")
@click.option("--device", type=click.Choice(["cpu", "auto", "all", "cuda"]), default="cpu", show_default=True,
              help="As for `posgrade check`.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Also run an instructor's private case files (DIR/test_*.py).")
@click.option("--out", "out_dir", metavar="DIR", default=None,
              help="Where the class reports go (default: DIRECTORY-grades beside DIRECTORY).")
@click.option("--limit", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Wall-clock seconds one submission may take in all before it is stopped.")
def grade_batch(directory, exercises, jobs, timeout, seed, device, cases_path, out_dir, limit):
    """Grade every submission folder under DIRECTORY, in parallel.

    Each folder directly under DIRECTORY is one student's submission (named by the folder);
    its exercise files may sit in the folder itself or up to three levels below it. Writes
    class.csv, class.json and class.html (plus each student's result and report) to --out.
    """
    import time

    from posgrade.classroom import batch, instructor

    root = Path(directory).expanduser().resolve()
    if not root.is_dir():
        raise UsageFailure(f"{directory} is not a folder of submissions")
    if any((root / e.file).is_file() for e in catalog.EXERCISES):
        raise UsageFailure(f"{directory} holds exercise files itself: it is one workspace (grade it with "
                           "`posgrade check --workspace`); grade-batch wants a folder of submission folders")
    for name in exercises:
        _exercise(name)
    names = [n for n in catalog.names() if n in exercises] if exercises else catalog.names()
    if cases_path:
        try:
            instructor.load_case_files(cases_path)
        except instructor.InstructorError as err:
            raise UsageFailure(str(err)) from None
        cases_path = str(Path(cases_path).expanduser().resolve())
    out = Path(out_dir).expanduser().resolve() if out_dir else root.parent / f"{root.name}-grades"
    if out.exists() and not out.is_dir():
        raise UsageFailure(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    subs = batch.find_submissions(root, skip=[out])
    if not subs:
        raise UsageFailure(f"{directory} has no submission folders")
    if seed is None:
        seed = secrets.randbelow(100000)
    if device in ("cuda", "all"):
        from posgrade.grading.plugin import resolve_devices

        try:
            resolve_devices(device)
        except ValueError as err:
            raise UsageFailure(str(err)) from None
    opts = batch.BatchOptions(exercises=names, seed=seed, timeout=timeout, device=device, jobs=jobs,
                              cases=cases_path or "", limit=limit)
    click.echo(f"Grading {len(subs)} submissions from {root} ({', '.join(names)}; seed {seed}; "
               f"{jobs} job{'s' * (jobs > 1)}) into {out}", err=True)
    started, t0 = batch.now(), time.monotonic()
    rows = batch.Batch(subs, out, opts, progress=lambda line: click.echo(line, err=True)).run()
    seconds = time.monotonic() - t0
    import posgrade

    stats = batch.write_reports(rows, names, out, {"posgrade": posgrade.__version__, "seed": seed, "jobs": jobs,
                                                   "started": started, "seconds": round(seconds, 1)})
    click.echo(f"Graded {len(rows)} submissions in {seconds:.1f} s: mean {stats['mean']:g} / {stats['max_score']:g}, "
               f"{stats['passed']} passed every case, {stats['errors']} with errors")
    click.echo(f"Wrote {out / 'class.csv'}, {out / 'class.json'} and {out / 'class.html'}")


@main.group()
def ci():
    """Write ready-to-use CI files: `posgrade ci github`, `posgrade ci gradescope`."""


def _ci_common(f):
    f = click.option("--force", is_flag=True, help="Overwrite files that already exist.")(f)
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Seconds one call of a student's code may take.")(f)
    f = click.option("--torch", "torch_version", metavar="VERSION", default=None,
                     help="The torch version to pin (default: the one installed here).")(f)
    f = click.option("--install", metavar="SPEC", default=None,
                     help="What pip installs for posgrade: a requirement (default posgrade==<this version>), "
                          "e.g. 'posgrade @ git+https://github.com/ORG/posgrade@TAG', or a wheel/sdist file.")(f)
    f = click.option("--exercise", "-e", "exercises", multiple=True, metavar="NAME",
                     help="Grade only this exercise; repeat for several (default: every exercise).")(f)
    return f


def _ci_options(exercises, install, torch_version, timeout, **extra):
    from posgrade.classroom import ci as ci_mod

    for name in exercises:
        _exercise(name)
    names = [n for n in catalog.names() if n in exercises] if exercises else catalog.names()
    return ci_mod.CIOptions(exercises=names, install=install or "", torch=torch_version or "", timeout=timeout,
                            **extra)


def _write_ci(out, files, force):
    from posgrade.classroom import ci as ci_mod

    clash = ci_mod.existing(out, files)
    if clash and not force:
        raise UsageFailure(f"{out} already has {', '.join(clash)}; add --force to overwrite")
    return ci_mod.write_files(out, files)


@ci.command("github")
@click.option("--out", default=".", show_default=True, metavar="DIR",
              help="The assignment's template repository; the files go to DIR/.github/.")
@click.option("--workspace", default="exercises", show_default=True, metavar="PATH",
              help="Where the exercise files are in the students' repository.")
@click.option("--python", "python_version", default="3.12", show_default=True, help="Python for the runner.")
@_ci_common
def ci_github(out, workspace, python_version, exercises, install, torch_version, timeout, force):
    """A GitHub Actions workflow that grades a Classroom assignment with posgrade."""
    opts = _ci_options(exercises, install, torch_version, timeout, workspace=workspace, python=python_version)
    from posgrade.classroom import ci as ci_mod

    for path in _write_ci(Path(out), ci_mod.github_files(opts), force):
        click.echo(f"wrote {path}")
    click.echo(f"Commit them to the assignment's template repository; students' pushes are graded with "
               f"{opts.names} from {workspace}/ and the reporter sends Classroom the points.")
    if opts.install == ci_mod.default_install():
        click.echo(f"pip installs {opts.install}; if your posgrade comes from elsewhere, rerun with "
                   "--install SPEC (a git URL or a package file).")


@ci.command("gradescope")
@click.option("--out", default="gradescope-autograder", show_default=True, metavar="DIR",
              help="Folder for the autograder files.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Private case files (DIR/test_*.py) to bundle and grade with.")
@click.option("--visibility", "visibility_path", metavar="FILE", default=None,
              help="Visibility file (JSON or TOML) to bundle: which cases students see, and when.")
@click.option("--zip", "zip_path", metavar="FILE", default=None,
              help="Also write the zip to upload to Gradescope.")
@_ci_common
def ci_gradescope(out, cases_path, visibility_path, zip_path, exercises, install, torch_version, timeout, force):
    """Gradescope's setup.sh and run_autograder (plus how to zip them) for posgrade."""
    from posgrade.classroom import ci as ci_mod
    from posgrade.classroom import instructor

    try:
        case_files = instructor.load_case_files(cases_path) if cases_path else []
        visibility = instructor.load_visibility(visibility_path) if visibility_path else None
    except instructor.InstructorError as err:
        raise UsageFailure(str(err)) from None
    opts = _ci_options(exercises, install, torch_version, timeout, cases=[cf.path for cf in case_files],
                       visibility=visibility)
    files = ci_mod.gradescope_files(opts, out_label=out)
    for path in _write_ci(Path(out), files, force):
        click.echo(f"wrote {path}")
    if zip_path:
        if Path(zip_path).exists() and not force:
            raise UsageFailure(f"{zip_path} exists; add --force to overwrite")
        ci_mod.write_zip(zip_path, files)
        click.echo(f"wrote {zip_path}: upload it as the assignment's autograder")
    else:
        click.echo(f"Zip the files (cd {out} && zip -r ../posgrade-autograder.zip .) and upload the zip as the "
                   "assignment's autograder; see README.txt there.")
