"""Diagnoses that hold up (issue 14): several mistakes at once, no story the evidence contradicts,
a diagnosis behind a dtype or shape failure, and no grader internals in any learner message.

Gradings of files go through conftest.grade_file with the seeds test_mistakes.py uses (7 for
tests/wrong, 11 for tests/unrelated), so no file is graded twice in a run."""

import re

import pytest
import torch
from conftest import INTERNALS, ROOT, WRONG, grade, grade_file, make_workspace

from posgrade.diagnosis import mistakes
from posgrade.diagnosis.compare import CaseFailure, assert_close
from posgrade.diagnosis.mistakes import Call
from posgrade.kit import catalog


def _call(name, args, value):
    return Call("call", name, tuple(args), {}, value)


def _learner_index(len_q, len_k, k, sign=1, clip=True, last=True):
    """A relative index as a learner might write it: sign, clipping and query placement chosen."""
    q = torch.arange(len_k - len_q, len_k) if last else torch.arange(len_q)
    d = sign * (torch.arange(len_k)[None, :] - q[:, None])
    return (d.clamp(-k, k) if clip else d) + k


# -- several mistakes at once -------------------------------------------------------------------

def test_pair_and_triple_of_mistakes_are_named_together():
    from posgrade.solutions import relative as ref

    pair = mistakes.search("relative", [_call("relative_position_index", (5, 5, 2),
                                              _learner_index(5, 5, 2, sign=-1, clip=False))], ref)
    assert pair.mistake.name == "sign_flipped+no_clip" and not pair.exhausted
    assert "looks like: distance is query minus key + distances not clipped" in pair.mistake.line()
    triple = mistakes.search("relative", [_call("relative_position_index", (3, 8, 2),
                                                _learner_index(3, 8, 2, sign=-1, clip=False, last=False))], ref)
    assert set(triple.mistake.name.split("+")) == {"sign_flipped", "no_clip", "queries_first_positions"}
    assert triple.seconds < mistakes.COMBINATION_SECONDS
    assert mistakes.get("relative", triple.mistake.name).title == triple.mistake.title


def test_index_matrix_described_by_distance_zero_sign_and_range():
    from posgrade.solutions import relative as ref

    try:
        assert_close(_learner_index(3, 7, 2, sign=-1, clip=False, last=False), ref.relative_position_index(3, 7, 2),
                     what="relative_position_index(3, 7, 2)")
    except CaseFailure as err:
        text = str(err)
    assert "distance 0 sits at key i for query i" in text and "the sign is mirrored" in text
    assert "values run -4..4 instead of 0..4" in text


def test_random_results_start_no_combination_search():
    from posgrade.solutions import relative as ref

    found = mistakes.search("relative", [_call("relative_position_index", (5, 5, 2),
                                               torch.randint(0, 5, (5, 5), generator=torch.Generator().manual_seed(3)))], ref)
    assert found.mistake is None and not found.exhausted


# -- diagnose through the first failed check ------------------------------------------------------

def test_float_causal_mask_reports_dtype_and_alignment():
    from posgrade.solutions import attention as ref

    got = torch.ones(2, 5).tril()  # float, and top-left
    try:
        assert_close(got, ref.causal_mask(2, 5), what="causal_mask(2, 5)")
    except CaseFailure as err:
        text = str(err)
    assert "dtype torch.float32" in text and "once cast to torch.bool, its values are wrong too" in text
    found = mistakes.search("attention", [_call("causal_mask", (2, 5), got)], ref)
    assert found.mistake.name == "causal_top_left" and found.coerced == "cast to torch.bool"


def test_one_row_position_ids_also_ignoring_past_length_is_named():
    from posgrade.solutions import learned as ref

    found = mistakes.search("learned", [_call("position_ids", (3, 4, 2), torch.arange(4)[None])], ref)
    assert found.mistake.name == "ignores_past_length" and "broadcast" in found.coerced


def test_a_result_on_the_wrong_device_is_diagnosed_on_its_values_too():
    """A CUDA call answered on the CPU (learner.py's device check fails first) is still diagnosed:
    every replay runs on the CPU (a mutant's bad index on CUDA would poison the grader's CUDA
    context), so this passes on a machine without CUDA, where a replay on "cuda" could not run."""
    from posgrade.solutions import attention as ref

    got = torch.ones(2, 5, dtype=torch.bool).tril()  # top-left, and on the CPU
    call = Call("call", "causal_mask", (2, 5), {"device": "cuda"}, got)
    found = mistakes.search("attention", [call], ref)
    assert found.mistake.name == "causal_top_left" and found.coerced == "moved to cuda"
    right = Call("call", "causal_mask", (2, 5), {"device": "cuda"}, ref.causal_mask(2, 5))
    assert mistakes.search("attention", [right], ref).mistake is None  # only the device is wrong: no story
    both = Call("call", "causal_mask", (2, 5), {"device": torch.device("cuda", 0)}, got.float())
    found = mistakes.search("attention", [both], ref)
    assert found.mistake.name == "causal_top_left" and found.coerced == "moved to cuda and cast to torch.bool"


# -- evidence before a story ----------------------------------------------------------------------

def _failures(name, stem):
    (ex,) = grade_file(name, WRONG / name / f"{stem}.py", seed=7).exercises
    return ex.failures


def test_dropout_is_not_blamed_for_a_deterministic_mistake():
    named = {c.name: c for c in _failures("attention", "bias_ignored")}
    case = named["test_dropout_off_in_eval"]
    assert "F.dropout" not in case.message and case.mistake == "bias_ignored"


def test_dtype_cases_failing_on_an_ignored_bias_name_the_bias():
    dtype_cases = [c for c in _failures("attention", "bias_ignored") if c.name == "test_sdpa_dtype"]
    assert dtype_cases and all(c.mistake == "bias_ignored" for c in dtype_cases)


def test_frequency_estimate_skips_a_zeroed_row_zero():
    case = [c for c in _failures("sinusoidal", "row_zero_zeroed") if c.name == "test_frequency_exponent"]
    assert all("turns at" not in c.message for c in case)


def test_positions_shifted_by_one_are_not_padding():
    failures = _failures("learned", "forward_shifted_by_one")
    assert not any(c.mistake == "padding_row_zero" for c in failures)
    assert any(c.mistake == "forward_shifted_by_one" for c in failures)


def test_causal_mask_marking_the_future_is_named_on_every_case_that_shows_it():
    failures = _failures("attention", "causal_mask_future")
    assert {c.name for c in failures} >= {"test_causal_mask_square", "test_mha_values"}
    assert all(c.mistake == "causal_mask_future" for c in failures), \
        sorted({(c.name, c.mistake) for c in failures if c.mistake != "causal_mask_future"})


def test_rope_angles_ignoring_positions_is_told_as_such(tmp_path):
    source = (ROOT / "solutions" / "rope.py").read_text()
    old = "angle = positions.to(dtype)[:, None]"
    assert old in source
    body = source.replace(old, "angle = torch.arange(positions.shape[0], device=positions.device).to(dtype)[:, None]", 1)
    ws = make_workspace(tmp_path / "ws", {"rope": body})
    (ex,) = grade(ws, ["rope"], seed=7).exercises
    case = [c for c in ex.failures if c.name == "test_frequency_exponent"]
    assert case and all("ignores its positions argument" in c.message for c in case)
    assert not any("is the position multiplied in" in c.message for c in case)


# -- no grader internals in learner messages ----------------------------------------------------

def test_expect_error_never_shows_a_probe_record():
    from posgrade.grading.casekit import expect_error

    try:
        expect_error(lambda: {"facts": {}, "output": torch.zeros(1)}, "ValueError", "MultiHeadAttention(10, 4)")
    except CaseFailure as err:
        assert "dict" not in str(err) and "ran without raising ValueError" in str(err)


def test_weights_that_do_not_fit_are_explained_in_the_spec_s_terms():
    from posgrade.kit import probes

    class NoWeight(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.zeros(3, 2))

    try:
        probes.load_weights(NoWeight(), {"weight": torch.zeros(3, 2)}, "cpu")
    except RuntimeError as err:
        text = str(err)
    assert "no parameter or persistent buffer `weight`" in text and "Unexpected key" not in text


def _gradings(name):
    for path in sorted((WRONG / name).glob("*.py")):
        yield grade_file(name, path, seed=7)
    unrelated = ROOT / "tests" / "unrelated" / f"{name}.py"
    if unrelated.exists():
        yield grade_file(name, unrelated, seed=11)


@pytest.mark.parametrize("name", catalog.names())
def test_no_message_names_grader_internals(name):
    """Every message over tests/wrong and tests/unrelated (graded once, shared with test_mistakes.py)
    speaks to the learner only. (tests/hostile's files are checked the same way in test_hostile.py,
    graded under its own limits.)"""
    from posgrade.grading import plugin

    leaks = []
    for result in _gradings(name):
        for ex in result.exercises:
            for case in ex.failures:
                if INTERNALS.search(case.message):
                    leaks.append(f"{result.workspace} {case.id}: {INTERNALS.search(case.message).group(0)}")
    assert not leaks, leaks[:10]
    assert not plugin.DIAGNOSIS_ERRORS, plugin.DIAGNOSIS_ERRORS[:5]


# -- real code we did not write -------------------------------------------------------------------

def _real_files():
    """real_<source>.py files and wrong files of several mistakes at once: those with a "Names:" line."""
    for name in catalog.names():
        for path in sorted((WRONG / name).glob("*.py")):
            if re.search(r"^Names: ", path.read_text(), re.M):
                yield name, path


def test_real_code_names_each_of_its_mistakes():
    """Each tests/wrong/<exercise>/real_<source>.py (published code wrapped into the stub's API, its
    bugs kept) gets every mistake on its "Names:" line named, alone or in a combination, and no other."""
    checked = 0
    for name, path in _real_files():
        want = {n.strip() for n in re.search(r"^Names: (.+)$", path.read_text(), re.M).group(1).split(",")}
        (ex,) = grade_file(name, path, seed=7).exercises
        named = {part for c in ex.failures if c.mistake for part in c.mistake.split("+")}
        assert named == want, f"{path.name}: named {sorted(named)}, expected {sorted(want)}"
        checked += 1
    assert checked >= 6


def test_a_case_that_fits_two_mistakes_names_the_one_other_cases_showed():
    """causal ignored and mask ignored fit a causal-only MultiHeadAttention case alike; the sdpa
    cases that pass for a learner who ignores only causal decide it, on every case."""
    failures = _failures("attention", "causal_ignored")
    assert failures and {c.mistake for c in failures} == {"causal_ignored"}
    assert any("this case fits as well: mask argument ignored" in c.message for c in failures)
