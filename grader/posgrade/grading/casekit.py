"""Helpers for writing cases: the style every case file (and an instructor's own) follows.

    from posgrade.grading.casekit import points, expect_error, randn
    from posgrade.diagnosis.compare import assert_close

    @points(2)
    def test_row_zero(learner, ref):
        \"\"\"row 0 is [0, 1, 0, 1, ...], not zeros\"\"\"
        assert_close(learner.sinusoidal_table(4, 6)[0], ref.sinusoidal_table(4, 6)[0], what="row 0")
"""

import pytest
import torch

from posgrade.diagnosis.compare import check_tensor, fail
from posgrade.grading.learner import LearnerError

points = pytest.mark.points


def randn(gen, *shape, device="cpu", dtype=torch.float32):
    """Standard normal values drawn on the CPU from gen, then moved (same values on every device)."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)


def expect_error(call, error, what):
    """call() must raise `error` (an exception class name such as "ValueError") in learner code."""
    try:
        value = call()
    except LearnerError as err:
        if err.kind != "exception":
            raise  # not implemented, crashed, timed out: that explanation is the one to show
        if err.exc_type == error:
            return
        fail(f"{what} raised {err.exc_type}, expected {error}: {err.summary}")
    if isinstance(value, dict):  # a probe's own record of the run (posgrade.kit.probes): nothing the learner returned
        fail(f"{what} ran without raising {error}")
    fail(f"{what} returned {_what_returned(value)} instead of raising {error}")


def _what_returned(value):
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def tensors(value, n, what):
    """value must be a tuple/list of n tensors; returns it as a list."""
    if not isinstance(value, (tuple, list)) or len(value) != n:
        fail(f"{what} returned {value if not isinstance(value, (tuple, list)) else f'{len(value)} items'}, "
             f"expected a tuple of {n} tensors")
    for i, t in enumerate(value):
        check_tensor(t, f"{what}[{i}]")
    return list(value)


SPEED_LIMIT = 20  # learner time / reference time on a large input, before the efficiency case fails
SLOW_CAUSES = ("(the usual causes: a Python loop over positions, rows or elements, or a large tensor rebuilt "
               "inside a loop, such as a randperm(N) per row)")


def assert_fast(learner, what, limit=SPEED_LIMIT, repeat=2, **target):
    """The learner's target (see probes.timed_target) runs at most `limit` times slower than the
    reference on the same large input, both timed in one worker. A time-out fails it too."""
    try:
        mine, ref = learner.speed(repeat=repeat, **target)
    except LearnerError as err:
        if err.kind != "timeout":
            raise
        fail(f"{what} took longer than the time limit on a large input, where the reference takes "
             f"milliseconds: vectorise it {SLOW_CAUSES}")
    ratio = mine / max(ref, 1e-6)
    if ratio > limit:
        fail(f"{what} took {mine / repeat * 1e3:.0f} ms a call, {ratio:.0f}x the reference's "
             f"{ref / repeat * 1e3:.1f} ms (the limit is {limit}x): vectorise it with tensor operations "
             f"{SLOW_CAUSES}")
