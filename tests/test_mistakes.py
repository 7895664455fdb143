"""Every real wrong implementation in tests/wrong/<exercise>/ loses points, and fails the case
named in its docstring ("Caught by: test_..."), so each mistake has a case that teaches it."""

import re

import pytest
from conftest import WRONG, grade, make_workspace

from posgrade import catalog


def wrong_files():
    return list(_wrong_files())


def _wrong_files():
    for name in catalog.names():
        for path in sorted((WRONG / name).glob("*.py")):
            yield pytest.param(name, path, id=f"{name}/{path.stem}")


def caught_by(path):
    m = re.search(r"^Caught by: (test_\w+)", path.read_text(), re.M)
    assert m, f"{path} must say which case catches it (a 'Caught by: test_...' line)"
    return m.group(1)


def test_each_graded_exercise_has_wrong_implementations():
    for name in catalog.names():
        assert len(list((WRONG / name).glob("*.py"))) >= 4, name


@pytest.mark.parametrize("name,path", wrong_files())
def test_wrong_implementation_is_caught(tmp_path, name, path):
    case = caught_by(path)
    ws = make_workspace(tmp_path / "ws", {name: path})
    result = grade(ws, [name], seed=7)
    (ex,) = result.exercises
    assert ex.score < ex.points, f"{path.stem} got full marks"
    failed = {c.name for c in ex.failures}
    assert case in failed, f"{path.stem} should fail {case}; it failed {sorted(failed)}"
    named = [c for c in ex.failures if c.name == case]
    assert all(c.kind != "internal" for c in named), [c.message for c in named]


def test_unfinished_earlier_exercise_is_named(tmp_path):
    """attention composes rope: a stub rope.py is blamed by name, not attention.py."""
    from posgrade import state

    ws = make_workspace(tmp_path / "ws", {"rope": state.kit_dir("exercises") / "rope.py"})
    result = grade(ws, ["attention"], seed=1)
    rope_cases = [c for c in result.exercises[0].failures if "rope" in c.params or "rope" in c.title]
    assert rope_cases
    assert all("from your rope.py, which still raises NotImplementedError" in c.message for c in rope_cases)
    assert not any(c.status == "failed" for c in result.exercises[0].cases if "none" in c.params)
