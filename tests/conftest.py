"""Shared helpers for posgrade's own tests: build workspaces from real files and grade them."""

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


def grade_file(name, path, seed=7):
    """The RunResult of a workspace of the reference solutions with `path` as exercise `name`,
    graded once per test run (tests/test_mistakes.py and the message checks read the same run)."""
    key = (name, str(path), seed)
    if key not in _GRADED:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="posgrade-test-") as tmp:
            ws = make_workspace(Path(tmp) / "ws", {name: Path(path)})
            _GRADED[key] = grade(ws, [name], seed=seed)
    return _GRADED[key]


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
