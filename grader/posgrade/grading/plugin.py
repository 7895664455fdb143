"""The pytest side of grading: fixtures for the hidden cases, and collecting their outcomes.

A case file (cases/test_<exercise>.py) is plain pytest. It asks for fixtures:

    learner  the learner's module for the file's exercise (learner.Learner: runs in the worker)
    ref      the reference solution (learner.Reference: runs here)
    device   "cpu" or "cuda"; a case that asks for it runs once per graded device
    gen      a torch.Generator seeded from the run's seed and the case's id
    seed     that seed as an int (for a worker-side Gen)

and marks its worth with @pytest.mark.points(n). Its docstring's first line is its title in
reports. run_cases() runs pytest in this process with this plugin and returns a RunResult.
"""

import datetime
import os
import platform
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

import posgrade
from posgrade.kit import catalog, manifest
from posgrade.grading import learner, process, sandbox
from posgrade.diagnosis import mistakes
from posgrade.diagnosis.compare import CaseFailure, figure_slices
from posgrade.results import CaseResult, ExerciseResult, RunResult

CASES_DIR = Path(__file__).parent / "cases"
DIAGNOSIS_ERRORS = []  # diagnoses that failed in this process ("case id: error"): never shown to learners


def case_seed(seed, case_id):
    return zlib.crc32(f"{seed}:{case_id}".encode())


def exercise_of(module):
    name = getattr(module, "EXERCISE", None)
    if name is None:
        name = Path(module.__file__).stem.removeprefix("test_")
    return name


def resolve_devices(device):
    """(devices to grade, devices listed as skipped, notes) for --device."""
    have_cuda = torch.cuda.is_available()
    if device == "cpu":
        return ["cpu"], [], []
    if device in ("cuda", "all") and not have_cuda:
        raise ValueError(f"--device {device} needs a CUDA device, and torch sees none "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    if device == "cuda":
        return ["cuda"], [], []
    if device == "all" or have_cuda:
        return ["cpu", "cuda"], [], []
    if device == "auto":
        return ["cpu"], ["cuda"], ["cuda: no CUDA device, CUDA cases skipped"]
    raise ValueError(f"--device must be one of cpu, cuda, all, auto; got {device!r}")


class GradingPlugin:
    def __init__(self, request, worker, devices, skipped):
        self.request = request
        self.worker = worker
        self.devices = devices
        self.skipped = skipped
        self.cases = {}  # id -> CaseResult, in run order
        self.collect_errors = []
        self._learners = {}
        self._ambiguous = {}  # case id -> (mistakes.Diagnosis, message before naming) of cases fitting several
        # an instructor's case files (check --cases): their cases are marked private in the result
        self.private_files = {str(Path(f).resolve()) for f in request.extra_cases}

    def pytest_configure(self, config):
        # pytest's default failure report parses the source of every frame (~0.3 s a failure);
        # the report reads only our own explanation, so the cheap native traceback will do
        config.option.tbstyle = "native"

    # -- fixtures ---------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc):
        if "device" in metafunc.fixturenames:
            params = [pytest.param(d, id=d) for d in self.devices]
            params += [pytest.param(d, id=d, marks=pytest.mark.skip(reason="no CUDA device"))
                       for d in self.skipped]
            metafunc.parametrize("device", params)

    @pytest.fixture
    def learner(self, request):
        name = exercise_of(request.module)
        if name not in self._learners:
            self._learners[name] = learner.Learner(self.worker, name)
        return self._learners[name]

    @pytest.fixture
    def ref(self, request):
        return learner.Reference(exercise_of(request.module))

    @pytest.fixture
    def seed(self, request):
        return case_seed(self.request.seed, request.node.nodeid)

    @pytest.fixture
    def gen(self, seed):
        return torch.Generator().manual_seed(seed)

    # -- outcomes ---------------------------------------------------------------------------
    def pytest_runtest_setup(self, item):
        process.raise_if_stopped()  # a SIGTERM asked for while the last case ran (session.StopSignals)
        for learner in self._learners.values():
            learner._log.clear()
            learner._printed.clear()

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(f"{report.nodeid}: {report.longreprtext[-1500:]}")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        exercise = exercise_of(item.module)
        case_id = f"{exercise}::{item.name}"
        case = self.cases.get(case_id)
        if case is None:
            marker = item.get_closest_marker("points")
            params = getattr(item, "callspec", None)
            doc = (item.obj.__doc__ or item.originalname).strip().splitlines()[0]
            case = CaseResult(
                id=case_id, exercise=exercise, name=item.originalname, title=doc,
                params=params.id if params else "",
                device=str(params.params.get("device", "")) if params else "",
                points=float(marker.args[0]) if marker else 1.0, score=0.0, status="passed",
                private=str(Path(str(item.fspath)).resolve()) in self.private_files)
            self.cases[case_id] = case
        case.seconds += report.duration
        if report.skipped and call.when == "setup":
            case.status = "skipped"
            case.message = _skip_reason(report)
        elif report.failed and case.status != "failed":
            case.status = "failed"
            case.kind, case.message = _explain(call.excinfo)
            figure = getattr(call.excinfo.value, "figure", None) if call.excinfo else None
            if figure is not None and self.request.figures:
                case.figure = figure_slices(*figure)
            # a wrong result, or an exception a known mistake raises too (-1e9 in float16, 4-D unpacking)
            if case.kind in ("wrong", "exception") and exercise in self._learners:
                self._name_mistake(case, self._learners[exercise]._log)
        if call.when == "teardown":
            if case.status == "passed":
                case.score = case.points
            printed = "".join(self._learners[exercise]._printed) if exercise in self._learners else ""
            if printed.strip() and case.status != "skipped" and "\nyour code printed:\n" not in case.message:
                # what the learner's code printed in calls that returned: the formats show it as the
                # test's output (Exercism's `output`, JUnit's system-out), for passed cases too
                case.message += "\nyour code printed:\n" + "\n".join("  " + ln for ln in printed.splitlines())

    def _name_mistake(self, case, calls):
        """Name the known mistake (or the combination of mistakes) the failed case's calls match, if
        one does (posgrade.diagnosis.mistakes)."""
        from posgrade.diagnosis import mistakes

        if case.kind == "exception" and calls and calls[-1].error:  # the call that raised: what the learner saw
            calls[-1].message = case.message
        try:
            search = mistakes.search(case.exercise, calls, learner.Reference(case.exercise)._module)
        except Exception as err:  # a diagnosis must never cost the learner a verdict, nor show the grader's insides
            DIAGNOSIS_ERRORS.append(f"{case.id}: {type(err).__name__}: {err}")  # for the project's tests
            return
        found = search.mistake
        if found is not None and search.also:  # decided once the run is over (resolve_ambiguous)
            self._ambiguous[case.id] = (search, case.message)
        if found is None and search.weak:  # too little evidence alone: named if other cases show it (resolve_ambiguous)
            self._ambiguous[case.id] = (search, case.message)
        if found is None:
            if search.exhausted:
                case.message += (f"\n(no single known mistake explains this; {search.tried} combinations of "
                                 f"them were tried in {search.seconds:.1f} s, the time a case may take)")
            return
        _show(case, case.message, found, search.also, search.coerced)

    def resolve_ambiguous(self):
        """A case whose calls fit several mistakes equally names the one that other cases of the same
        exercise showed unambiguously, when exactly one did (a mistake is named alike on every case
        that shows it); otherwise the catalog's first, with the others told beside it. A case whose
        calls fit a mistake on too few bools or ints to name it alone (a 1x1 mask) is named the same
        way, and only so: a random answer matches such a case by chance, never the other cases."""
        sure = {}
        for case in self.cases.values():
            if case.mistake and case.id not in self._ambiguous:
                sure.setdefault(case.exercise, set()).add(case.mistake)
        for case_id, (search, message) in self._ambiguous.items():
            case = self.cases[case_id]
            fits = ([search.mistake] if search.mistake else []) + list(search.also) + list(search.weak)
            shown = [m for m in fits if m.name in sure.get(case.exercise, ())]
            if len(shown) == 1 and shown[0] is not search.mistake:
                _, sep, printed = case.message.partition("\nyour code printed:\n")  # added at teardown: kept
                if sep and sep not in message:
                    message += sep + printed
                _show(case, message, shown[0], [m for m in fits if m is not shown[0] and m not in search.weak],
                      search.coerced)


def _show(case, message, found, also, coerced):
    """Name `found` on the case: its lines after the message's first, the other fits and the
    dtype/shape note beside it, and no generic "looks like:" pattern of compare.py."""
    case.mistake = found.name
    lines = [ln for ln in message.splitlines() if not ln.startswith("looks like:")]
    named = found.line().splitlines()
    if also:  # evidence first: these calls cannot tell them apart, so say each
        named.insert(1, "  (this case fits as well: " + "; ".join(m.title for m in also) +
                     "; other cases tell them apart)")
    if coerced:  # a second finding, behind the dtype or shape one the message leads with
        named.insert(1, f"  (in the values, once your result is {coerced})")
    case.message = "\n".join(lines[:1] + named + lines[1:])


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return "skipped"


def _explain(excinfo):
    """(kind, message) for a failed case."""
    if excinfo is None:
        return "internal", "failed"
    exc = excinfo.value
    if isinstance(exc, learner.LearnerError):
        return exc.kind, exc.explain()
    if isinstance(exc, CaseFailure):
        return "wrong", str(exc)
    if isinstance(exc, AssertionError):
        return "wrong", str(exc) or excinfo.exconly()
    if "Opaque" in str(exc):  # a case used a non-tensor result as a tensor before checking it
        return "wrong", "your code returned something that is not a tensor where a tensor was expected"
    return "internal", f"grader error (please report it): {excinfo.exconly()}"


@contextmanager
def _clean_pytest_env():
    """The learner's own pytest settings (PYTEST_ADDOPTS, auto-loaded plugins) stay out."""
    saved = {k: os.environ.get(k) for k in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    os.environ.pop("PYTEST_ADDOPTS", None)
    os.environ.pop("PYTEST_PLUGINS", None)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def case_files(names):
    return [str(CASES_DIR / catalog.get(n).cases) for n in names]


def run_cases(request, worker):
    """Run the hidden cases for request.exercises (and request.extra_cases); a RunResult."""
    devices, skipped, notes = resolve_devices(request.device)
    kit_files, kit_changed = manifest.begin(request.exercises)  # the reference, cases and catalogs as built (kit/manifest.py)
    if kit_changed:
        return _kit_changed(request, devices, notes, kit_changed)
    for name in request.exercises:  # the references and mistake catalogs in memory before learner code runs
        learner.Reference(name)
        mistakes.of(name)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    plugin = GradingPlugin(request, worker, devices, skipped)
    files = case_files(request.exercises) + [str(f) for f in request.extra_cases]
    args = files + [
        "-c", str(CASES_DIR / "pytest.ini"), "--rootdir", str(CASES_DIR),
        "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:stepwise",
        "--capture=no", "-W", "ignore::pytest.PytestAssertRewriteWarning",
        # cases explain failures with CaseFailure, never a bare assert: no assertion rewriting (it
        # recompiles every case file on each run), and none of the plugins a grading run has no use for
        "--assert=plain", "-p", "no:doctest", "-p", "no:pastebin", "-p", "no:junitxml", "-p", "no:logging",
        "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:faulthandler",
    ]
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see worker.serve: the two processes take turns on the cores
    try:
        with _clean_pytest_env():
            code = pytest.main(args, plugins=[plugin])
    finally:
        torch.set_num_threads(threads)
    plugin.resolve_ambiguous()
    if plugin.collect_errors or code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        raise RuntimeError("the grader's cases could not run:\n" + "\n".join(plugin.collect_errors or [str(code)]))
    result = RunResult(
        workspace=str(request.workspace), seed=request.seed, devices=devices,
        started=started.isoformat(timespec="seconds"), seconds=round(time.perf_counter() - t0, 3),
        versions={"posgrade": posgrade.__version__, "torch": torch.__version__,
                  "python": platform.python_version()},
        notes=notes,
    )
    for name in request.exercises:
        ex = catalog.get(name)
        cases = [c for c in plugin.cases.values() if c.exercise == name]
        graded = [c for c in cases if c.status != "skipped"]
        result.exercises.append(ExerciseResult(
            name, ex.title, ex.points, earned=sum(c.score for c in graded),
            graded=sum(c.points for c in graded), cases=cases))
    unsandboxed = _sandbox_note(worker)
    if unsandboxed:
        result.notes.append(unsandboxed)
    kit_changed = manifest.finish(kit_files, request.exercises)
    if kit_changed:  # learner code (or anything else) changed the kit during the run: no grade
        result.error = manifest.message(kit_changed)
        return result
    broken = [c for e in result.exercises for c in e.cases if c.kind == "internal"]
    if broken:  # the grader failed, not the learner: the run is an error, never a grade
        first = broken[0].message.splitlines()[0] if broken[0].message else "failed"
        result.error = (f"the grader itself failed on {len(broken)} case{'s' * (len(broken) > 1)} "
                        f"(first: {broken[0].id}: {first}); please report it")
    return result


def _sandbox_note(worker):
    """"learner code was not sandboxed: <reason>" when it was not (sandbox.py), else None."""
    status = getattr(worker, "sandbox", None)
    if status is None:  # the worker never said "ready" (no case reached it): judge this machine
        ok, reason = sandbox.available()
        return None if ok else f"learner code was not sandboxed: {reason}"
    return sandbox.note(status)


def _kit_changed(request, devices, notes, rel):
    """The run stopped before any case: the kit's files are not the ones built (kit/manifest.py)."""
    started = datetime.datetime.now(datetime.timezone.utc)
    result = RunResult(workspace=str(request.workspace), seed=request.seed, devices=devices,
                       started=started.isoformat(timespec="seconds"),
                       versions={"posgrade": posgrade.__version__, "torch": torch.__version__,
                                 "python": platform.python_version()},
                       notes=notes, error=manifest.message(rel))
    for name in request.exercises:
        ex = catalog.get(name)
        result.exercises.append(ExerciseResult(name, ex.title, ex.points, earned=0.0, graded=0.0, cases=[]))
    return result
