"""Every real wrong implementation in tests/wrong/<exercise>/ loses points, and fails the case
named in its docstring ("Caught by: test_..."), so each mistake has a case that teaches it.

Every known mistake of the catalog (posgrade/diagnosis/mistakes/<exercise>.py) has such a file, named
after it, and grading that file names the mistake in the report; grading an unrelated wrong
answer (tests/unrelated/<exercise>.py: random outputs of the right shape) names none."""

import re

import pytest
import torch
from conftest import ROOT, WRONG, grade, grade_file, make_workspace

from posgrade.kit import catalog
from posgrade.diagnosis import mistakes
from posgrade.diagnosis.mistakes import Call

UNRELATED = ROOT / "tests" / "unrelated"


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
    result = grade_file(name, path, seed=7)
    (ex,) = result.exercises
    assert ex.score < ex.points, f"{path.stem} got full marks"
    failed = {c.name for c in ex.failures}
    assert case in failed, f"{path.stem} should fail {case}; it failed {sorted(failed)}"
    named = [c for c in ex.failures if c.name == case]
    assert all(c.kind != "internal" for c in named), [c.message for c in named]
    assert not any("(no diagnosis:" in c.message for c in ex.failures)
    diagnosed = {part for c in ex.failures if c.mistake for part in c.mistake.split("+")}  # "a+b": both at once
    if path.stem in {m.name for m in mistakes.of(name)}:
        assert path.stem in diagnosed, f"{path.stem} was not named; named: {sorted(diagnosed)}"
        shown = [c for c in ex.failures if path.stem in c.mistake.split("+")]
        assert all(f"looks like: {mistakes.get(name, c.mistake).title}" in c.message for c in shown)


# -- the catalog of known mistakes --------------------------------------------------------

def all_mistakes():
    return [pytest.param(name, m, id=f"{name}/{m.name}") for name in catalog.names()
            for m in mistakes.of(name)]


@pytest.mark.parametrize("name", catalog.names())
def test_catalog_has_enough_mistakes(name):
    found = mistakes.of(name)
    assert len(found) >= (4 if name == "batches" else 8)
    assert len({m.name for m in found}) == len(found), "mistake names repeat"


@pytest.mark.parametrize("name,mistake", all_mistakes())
def test_mistake_is_complete(name, mistake):
    """Each mistake has a title, a one-line explanation, a hint, a real wrong file, and one way to be
    detected; edits apply to the reference exactly once each and change what it computes."""
    assert mistake.title and mistake.hint and "\n" not in mistake.explanation
    assert (WRONG / name / f"{mistake.name}.py").exists(), f"no tests/wrong/{name}/{mistake.name}.py"
    assert bool(mistake.edits) != (mistake.matches is not None)
    if mistake.edits:
        module = mistakes.mutant(name, mistake)  # raises unless each `old` occurs exactly once
        assert module.__file__.endswith(f"{mistake.name}>")


@pytest.mark.parametrize("name", catalog.names())
def test_unrelated_wrong_answer_names_no_mistake(tmp_path, name):
    """Random outputs of the right shapes lose points, and no mistake is named for them."""
    (ex,) = grade_file(name, UNRELATED / f"{name}.py", seed=11).exercises
    assert ex.score < ex.points / 2
    assert [c.id for c in ex.failures if c.mistake] == []
    assert not any(c.message.count("looks like:") and "hint:" in c.message for c in ex.failures)


def test_reference_outputs_name_no_mistake():
    """diagnose() on calls whose results are the reference's own names nothing; on the same calls
    with a mutant's results it names that mutant's mistake."""
    from posgrade.solutions import sinusoidal as ref

    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    probe = dict(cls="SinusoidalPositionalEncoding", args=(8,), kwargs={"max_len": 16}, device="cpu",
                 inputs=(x,), forward_kwargs={"offset": 3}, grad_output=None)
    calls = [Call("call", "sinusoidal_table", (12, 8), {}), Call("probe", "module", (), probe)]
    for c in calls:
        c.value, c.error = mistakes.replay(ref, c)
    assert mistakes.diagnose("sinusoidal", calls, ref) is None
    for m in mistakes.of("sinusoidal"):
        if m.name in ("sin_cos_swapped", "ignores_offset"):
            for c in calls:
                c.value, c.error = mistakes.replay(mistakes.mutant("sinusoidal", m), c)
            assert mistakes.diagnose("sinusoidal", calls, ref).name == m.name


def test_agree_is_strict_about_structure():
    a = torch.ones(3, 4)
    assert mistakes.agree(a, a + 1e-6)
    assert not mistakes.agree(a, a + 0.01)
    assert not mistakes.agree(a, a.double())  # another dtype is another result
    assert not mistakes.agree(a, a.T.contiguous().reshape(3, 4) * 2)
    assert not mistakes.agree(a, None) and not mistakes.agree((a, a), (a,))
    assert mistakes.agree({"x": [a, 1]}, {"x": [a.clone(), 1]})
    nan = torch.tensor([1.0, float("nan")])
    assert mistakes.agree(nan, nan.clone()) and not mistakes.agree(nan, torch.tensor([1.0, 2.0]))


def test_unfinished_earlier_exercise_is_named(tmp_path):
    """attention composes rope: a stub rope.py is blamed by name, not attention.py."""
    from posgrade.kit import state

    ws = make_workspace(tmp_path / "ws", {"rope": state.kit_dir("exercises") / "rope.py"})
    result = grade(ws, ["attention"], seed=1)
    rope_cases = [c for c in result.exercises[0].failures if "rope" in c.params or "rope" in c.title]
    assert rope_cases
    assert all("from your rope.py, which still raises NotImplementedError" in c.message for c in rope_cases)
    assert not any(c.status == "failed" for c in result.exercises[0].cases if "none" in c.params)


def test_replays_are_kept_within_their_byte_budget_and_equal_fresh_ones(monkeypatch):
    """mistakes.replay keeps replays (a pure function of module and call) up to REPLAY_BYTES_KEPT bytes of
    tensors: a kept one is the fresh one's equal, and the oldest go first once the budget is spent."""
    from posgrade.solutions import sinusoidal as ref

    monkeypatch.setattr(mistakes, "_REPLAYS", type(mistakes._REPLAYS)())
    monkeypatch.setattr(mistakes, "_replay_bytes", [0])
    monkeypatch.setattr(mistakes, "REPLAY_BYTES_KEPT", 10 * 64 * 8 * 4)  # ten tables of [64, 8] float32
    calls = [Call("call", "sinusoidal_table", (64, 8), {"base": float(b)}) for b in range(100, 130)]
    first = mistakes.replay(ref, calls[0])[0]
    assert mistakes.replay(ref, calls[0])[0] is first  # kept
    assert torch.equal(first, ref.sinusoidal_table(64, 8, base=100.0))
    for c in calls[1:]:
        mistakes.replay(ref, c)
    assert mistakes._replay_bytes[0] <= mistakes.REPLAY_BYTES_KEPT and len(mistakes._REPLAYS) == 10
    again = mistakes.replay(ref, calls[0])[0]
    assert again is not first and torch.equal(again, first)  # evicted, replayed anew, the same values
    mutant = mistakes.mutant("sinusoidal", mistakes.get("sinusoidal", "sin_cos_swapped"))
    assert not torch.equal(mistakes.replay(mutant, calls[0])[0], first)  # another module: another entry
