"""`posgrade check`: grade a workspace, write the result files, and say what to tell the learner.

run(options) is the whole command below the CLI's parsing, and grade-batch grades each
submission with the same run(). It validates what the command line asked for (CheckError, the
CLI's exit code 2), writes a provisional "error" result into every result file before grading
starts (so a run killed from outside still leaves a result that says so), grades in one
GradingSession, records progress, writes the real results, and returns a CheckOutcome: the
RunResult, the terminal text and the exit code.
"""

import os
import secrets
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import posgrade
from posgrade.grading.session import GradeRequest, GradingSession, Limits, StopSignals, Stopped
from posgrade.kit import catalog, notebooks, state
from posgrade.reporting import formats, terminal
from posgrade.results import ExerciseResult, RunResult


class CheckError(Exception):
    """A usage or workspace problem, told in one line (the CLI exits 2)."""


@dataclass
class CheckOptions:
    names: list = field(default_factory=list)  # as typed; empty = the first exercise not yet passed
    all: bool = False
    device: str = "auto"
    seed: int = None
    timeout: float = 10.0
    workspace: str = None  # --workspace as given (None: $POSGRADE_WORKSPACE, else ./exercises)
    case_files: list = field(default_factory=list)  # an instructor's loaded CaseFiles (classroom.instructor)
    cases_path: str = ""  # where they came from, for the rerun command
    visibility: object = None  # reporting.gradescope.Visibility, or None
    allow_missing: bool = False
    save: bool = True
    targets: list = field(default_factory=list)  # [(format, path)] result files to write
    min_score: str = None  # "N" or "N%"
    summary_path: str = None  # $GITHUB_STEP_SUMMARY for the github format
    verbose: bool = False
    unicode: bool = True
    stop_signals: bool = None  # SIGTERM/SIGINT end the run as an error result (default: when there are targets)
    escape: bool = False  # escape workflow commands in the text (GitHub Actions)


@dataclass
class CheckOutcome:
    result: RunResult
    text: str  # the terminal report
    code: int  # the exit code: 0 passed (or reached the pass mark), 1 not
    failed: bool = False  # the grader itself failed: text goes to stderr


def exercise(name):
    """The catalog's exercise called name, matched without regard to case, or numbered as
    `posgrade list` numbers them (0, 1, ...); CheckError with the closest names when there is none."""
    key = str(name).strip()
    if key.isdigit() and int(key) < len(catalog.EXERCISES):
        return catalog.EXERCISES[int(key)]
    by_lower = {n.lower(): n for n in catalog.names()}
    try:
        return catalog.get(by_lower.get(key.lower(), key))
    except KeyError as err:
        if key.isdigit():
            raise CheckError(f"no exercise number {key}; `posgrade list` numbers them 0 to "
                             f"{len(catalog.EXERCISES) - 1}") from None
        raise CheckError(err.args[0]) from None


def validate_names(names, all_):
    """The catalog's names for names as typed (any case, or list numbers); CheckError for a bad one."""
    if names and all_:
        raise CheckError("give exercise names or --all, not both")
    return list(dict.fromkeys(exercise(name).name for name in names))


def open_workspace(option):
    """(workspace path, its Progress), refusing a missing workspace or one made for another
    exercise interface."""
    try:
        ws = state.find_workspace(option)
        progress = state.Progress(ws)
        progress.check_format()
    except state.WorkspaceError as err:
        raise CheckError(str(err)) from None
    return ws, progress


def require_files(ws, names, progress):
    missing = [catalog.get(n).file for n in names if notebooks.exercise_file(ws, n) is None]
    if missing:
        made_by = progress.data.get("kit_version", "an older posgrade")
        raise CheckError(f"{ws} has no {', '.join(missing)} (the workspace was made by posgrade {made_by}); "
                         f"`posgrade init {ws}` adds the missing stubs and keeps your files")


def pass_mark(text):
    """(value, is_percent) from --min-score N or N%; None without it."""
    if text is None:
        return None
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise CheckError(f"--min-score {text}: give a number of points (40) or a percentage (50%)") from None
    if value < 0 or (percent and value > 100):
        raise CheckError(f"--min-score {text} is out of range")
    return value, percent


def check_mark_reachable(text, names):
    """CheckError when --min-score N asks for more points than the exercises graded are worth."""
    mark = pass_mark(text)
    top = sum(catalog.get(n).points for n in names)
    if mark is not None and not mark[1] and mark[0] > top + 1e-9:
        raise CheckError(f"--min-score {text} is more than this run can score: {', '.join(names)} "
                         f"{'is' if len(names) == 1 else 'are'} worth {top:g} points (give at most {top:g}, "
                         "or a percentage such as 80%)")


def workspace_notes(ws, names):
    """Notes for the report: the kit's own stub folder graded (nothing is saved there), and what
    was left out of each notebook graded in place of a .py file."""
    notes = []
    if state.is_kit_stub_dir(ws):
        notes.append(state.KIT_STUBS_NOTE)
    for name in names:
        path = notebooks.exercise_file(ws, name)
        if path is None or path.suffix != ".ipynb":
            continue
        try:
            built = notebooks.build(path)
        except notebooks.NotebookError as err:
            notes.append(str(err))
            continue
        skipped = f" except {len(built.skipped)} tagged {notebooks.SKIP_TAG}" if built.skipped else ""
        notes.append(f"{path.name}: graded its code cells in order{skipped}"
                     + "".join(f"; {n.removeprefix(path.name + ' ')}" for n in built.notes[:6])
                     + ("; ..." if len(built.notes) > 6 else ""))
    return notes


def output_targets(fmts, outputs, order, json_path=None, html_path=None):
    """[(format, path)]: each --output belongs to the --format just before it on the command
    line (order: the option names as they came); a --format without one writes to its default
    place; --json PATH is --format json --output PATH, --html PATH is --format html --output PATH."""
    pairs, fi, oi = [], 0, 0
    for name in order:
        if name == "formats_":
            pairs.append([fmts[fi], None])
            fi += 1
        else:
            if not pairs or pairs[-1][1] is not None:
                where = f"after --format {pairs[-1][0]}, which already writes to {pairs[-1][1]}" if pairs else \
                    "before any --format"
                raise CheckError(f"--output {outputs[oi]} comes {where}; give each --format its own --output "
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
                raise CheckError("--format github appends to $GITHUB_OUTPUT, which is not set (is this a GitHub "
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
            raise CheckError(f"--format {seen[key]} and --format {fmt} would both write {path}")
        seen[key] = fmt
        own = {("json", json_path): "--json", ("html", html_path): "--html"}
        _check_writable(path, own.get((fmt, path), f"--format {fmt}"))
    return targets


def _check_writable(path, option):
    p = Path(path).expanduser()
    parent = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise CheckError(f"{option} {path} is a folder; give a file path")
    if not parent.is_dir():
        raise CheckError(f"{option} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CheckError(f"{option} {path} is not writable")


def error_result(reason, names, workspace="", seed=0):
    """A RunResult for a run that could not grade: status "error", 0 of the real maximum."""
    names = [n for n in names if n in catalog.names()]
    return RunResult(workspace=str(workspace), seed=seed or 0, devices=[], error=reason,
                     versions={"posgrade": posgrade.__version__},
                     exercises=[ExerciseResult(n, catalog.get(n).title, catalog.get(n).points, 0, 0) for n in names])


class _Plan:
    """What an error result needs, learnt step by step as the run goes."""

    def __init__(self, opts):
        # until the workspace says which exercise is next, an error result counts every exercise, so that
        # a classroom's result still holds 0 of the real maximum (GitHub's reporter skips max_score 0)
        known = [exercise(n).name for n in opts.names if _known(n)]
        self.names = known or catalog.names()
        self.workspace = opts.workspace or ""
        self.seed = opts.seed or 0
        self.provisional = {}  # github output path -> the provisional line written there

    def error(self, reason):
        return error_result(reason, self.names, self.workspace, self.seed)


def _known(name):
    try:
        exercise(name)
        return True
    except CheckError:
        return False


def grade(opts, plan=None, session=None):
    """(RunResult, rerun command): the grading behind `check` (and each submission of grade-batch).
    With `session` (a GradingSession kept by the caller, as grade-batch's grader processes keep one),
    its standby worker grades and a new one is started for the next call."""
    plan = plan or _Plan(opts)
    asked = validate_names(opts.names, opts.all)
    ws, progress = open_workspace(opts.workspace)
    plan.workspace = str(ws)
    names = list(dict.fromkeys(catalog.names() if opts.all else asked or progress.todo()))
    plan.names = names
    check_mark_reachable(opts.min_score, names)
    if not opts.allow_missing:
        require_files(ws, names, progress)
    seed = secrets.randbelow(100000) if opts.seed is None else opts.seed
    plan.seed = seed
    revealed = {n: progress.revealed_before_pass(n) for n in names}
    extra = [str(cf.path) for cf in opts.case_files if cf.exercise in names]
    stop = bool(opts.targets) if opts.stop_signals is None else opts.stop_signals
    figures = any(fmt == "html" for fmt, _ in opts.targets)
    own = session is None
    with StopSignals(stop):  # from the placeholders on: a SIGTERM after them ends in an error result
        _write_placeholders(opts, plan)
        session = session or GradingSession(ws, Limits(seconds=opts.timeout), device=opts.device)
        try:
            result = session.grade(GradeRequest(str(ws), names, seed, opts.device, extra_cases=extra,
                                                figures=figures), stop_signals=stop, standby=not own)
        except ValueError as err:
            raise CheckError(str(err)) from None
        except Stopped as stopped:
            reason = (f"grading was stopped by {stopped.signal} before every case ran; the cases that ran "
                      f"are kept in the JSON result, and the run scores 0")
            result = stopped.result or plan.error(reason)
            result.error = reason
        finally:
            if own:
                session.close()
    for ex in result.exercises:
        ex.revealed_before_pass = revealed.get(ex.name, False)
    result.notes = workspace_notes(ws, names) + list(result.notes)
    if opts.save and not result.error:
        progress.record(result)
    rerun = "posgrade check " + ("--all" if opts.all else " ".join(names))
    if opts.workspace:
        rerun += f" --workspace {opts.workspace}"
    if opts.cases_path:
        rerun += f" --cases {opts.cases_path}"
    return result, rerun


def _write_placeholders(opts, plan):
    """Before grading: an "error" result in each file, replaced at the end, so that a run killed
    from outside (a CI's hard time-out) still leaves a result that says so."""
    reason = "grading did not finish: the grader was stopped before it could write its results"
    for fmt, path in opts.targets:
        try:  # github: a line that the final one replaces (the step's output must hold exactly one)
            line = formats.write(fmt, Path(path).expanduser(), plan.error(reason), opts.visibility)
        except OSError:
            continue
        if line:
            plan.provisional[path] = line


def wall_seconds(t0):
    """Seconds the learner waited since t0 (perf_counter), the worker's start and torch's import
    included: what the report prints, beside the cases' own time."""
    return time.perf_counter() - t0


def run(opts, warn=print):
    """The check command: grade, write every result file, and return a CheckOutcome. CheckError
    for a usage problem (the error result is written to the result files first)."""
    plan = _Plan(opts)
    t0 = time.perf_counter()
    try:
        mark = pass_mark(opts.min_score)
        result, rerun = grade(opts, plan)
    except CheckError as err:
        if opts.targets:
            formats.write_all(opts.targets, plan.error(str(err)), opts.visibility, opts.summary_path, warn,
                              plan.provisional)
        raise
    except Exception as err:  # the grader's own failure: still a result file, status "error"
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()] or [""]
        what = lines[0] + (f" ... {lines[-1].removeprefix('E ').strip()}" if len(lines) > 1 else "")
        reason = f"internal error in the grader: {type(err).__name__}: {what}"
        formats.write_all(opts.targets, plan.error(reason + "\n\n" + traceback.format_exc()), opts.visibility,
                          opts.summary_path, warn, plan.provisional)
        text = formats.escape_commands(f"posgrade: {reason}\n\n{traceback.format_exc()}")
        return CheckOutcome(plan.error(reason), text, 1, failed=True)
    formats.write_all(opts.targets, result, opts.visibility, opts.summary_path, warn, plan.provisional)
    text, code = terminal.check_text(result, rerun, mark, verbose=opts.verbose, unicode=opts.unicode,
                                     wall=wall_seconds(t0))
    if opts.escape:
        text = formats.escape_commands(text)  # learner output must not read as a workflow command
    return CheckOutcome(result, text, code)
