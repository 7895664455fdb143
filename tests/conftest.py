"""Shared helpers for posgrade's own tests: build workspaces from real files and grade them."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from posgrade.kit import catalog, state
from posgrade.grading import session as runner

ROOT = Path(__file__).resolve().parent.parent
WRONG = ROOT / "tests" / "wrong"
HOSTILE = ROOT / "tests" / "hostile"

# words of the grader's own making that no learner message may show (tests/test_diagnosis.py, test_hostile.py)
INTERNALS = re.compile(r"grader error|KeyError|Opaque|posgrade\.|probes\.|"
                       r"state_dict\(\)\[|returned dict|\(no diagnosis|Unexpected key\(s\)|Missing key\(s\)")


def make_workspace(path, files=None, base="solutions"):
    """A workspace at path: every catalog exercise from `base` (solutions or exercises),
    then `files` ({exercise name: source file or text}) on top."""
    path.mkdir(parents=True, exist_ok=True)
    for ex in catalog.EXERCISES:
        shutil.copyfile(state.kit_dir(base) / ex.file, path / ex.file)
    for name, src in (files or {}).items():
        text = src.read_text() if isinstance(src, Path) else src
        (path / f"{name}.py").write_text(text)
    return path


_SESSIONS = {}  # (device, limits) -> a GradingSession whose standby worker has torch imported already


def grade(workspace, exercises, seed=0, device="auto", **limits):
    """Grade in this process (nested pytest), the way the CLI does, through one GradingSession per
    (device, limits) kept for the whole test run: each grading gets a fresh worker that has never run
    learner code, started while the previous grading ran (as grade-batch does)."""
    key = (device, tuple(sorted(limits.items())))
    if key not in _SESSIONS:
        _SESSIONS[key] = runner.GradingSession(workspace, runner.Limits(**limits), device=device, fork_server=True)
        _SESSIONS[key].warm()  # start-up is not the first case's time (cases that time themselves)
    request = runner.GradeRequest(str(workspace), list(exercises), seed, device)
    return _SESSIONS[key].grade(request, standby=True)


_GRADED = {}  # (exercise, file, seed) -> RunResult: one grading of a learner file serves every test that reads it
SHARED = "POSGRADE_TEST_SHARED"  # under pytest-xdist: a folder the run's workers share (pytest_configure)


def grade_file(name, path, seed=7):
    """The RunResult of a workspace of the reference solutions with `path` as exercise `name`,
    graded once per test run (tests/test_mistakes.py and the message checks read the same run);
    under pytest-xdist, once for all the run's workers (the first to need it grades it)."""
    key = (name, str(path), seed)
    if key not in _GRADED:
        shared = os.environ.get(SHARED)
        if shared:
            _GRADED[key] = _graded_once(Path(shared), key, lambda: _grade_file(name, path, seed))
        else:
            _GRADED[key] = _grade_file(name, path, seed)[0]
    return _GRADED[key]


def _grade_file(name, path, seed):
    """(RunResult, the diagnosis errors it raised) for grade_file."""
    import tempfile

    from posgrade.grading import plugin

    errors = len(plugin.DIAGNOSIS_ERRORS)
    with tempfile.TemporaryDirectory(prefix="posgrade-test-") as tmp:
        ws = make_workspace(Path(tmp) / "ws", {name: Path(path)})
        return grade(ws, [name], seed=seed), plugin.DIAGNOSIS_ERRORS[errors:]


def _graded_once(folder, key, grade_it):
    """The RunResult stored for key in folder, graded (under the key's lock) by whichever worker
    asks first; the diagnosis errors of that grading are reported in each worker that reads it."""
    import fcntl
    import hashlib

    from posgrade.grading import plugin
    from posgrade.results import RunResult

    stem = folder / hashlib.sha1(repr(key).encode()).hexdigest()
    with open(stem.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = stem.with_suffix(".json")
        if done.exists():
            saved = json.loads(done.read_text())
            plugin.DIAGNOSIS_ERRORS.extend(saved["diagnosis_errors"])
            return RunResult.from_dict(saved["result"])
        result, errors = grade_it()
        done.write_text(json.dumps({"result": result.to_dict(), "diagnosis_errors": errors}))
        return result


def pytest_configure(config):
    """Under pytest-xdist (pyproject's addopts: -n), the controller makes the folder its workers
    share (gradings of tests/wrong files, the kit lock) before it starts them."""
    if SHARED not in os.environ and getattr(config.option, "numprocesses", None) \
            and not hasattr(config, "workerinput"):
        import tempfile

        os.environ[SHARED] = tempfile.mkdtemp(prefix="posgrade-tests-")
        config._posgrade_shared = os.environ[SHARED]


def pytest_unconfigure(config):
    folder = getattr(config, "_posgrade_shared", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(SHARED, None)


@pytest.fixture(autouse=True)
def _kit_lock(request):
    """A test marked writes_kit lets learner code write the kit's own files (the sandbox off, on
    purpose), and every grading that overlaps it would see "the kit's files changed": under
    pytest-xdist it runs alone, holding the run's kit lock exclusively; every other test holds it
    shared."""
    shared = os.environ.get(SHARED)
    if not shared:
        yield
        return
    import fcntl

    exclusive = request.node.get_closest_marker("writes_kit") is not None
    with open(Path(shared) / "kit.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield


@pytest.fixture(scope="session", autouse=True)
def _close_grading_sessions():
    yield
    for session in _SESSIONS.values():
        session.close()


def snapshot(folder):
    """Every file under folder with its bytes, to prove grading changed nothing."""
    folder = Path(folder)
    if folder.is_file():
        return {folder.name: folder.read_bytes()}
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path / "ws")
