"""Hidden cases for the batches exercise.

get_batch is random, so it is graded by properties of its draws, never by matching the
reference's own random numbers. The token stream is a permutation (every token distinct),
so each row's start can be read back from its first token.
"""

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, tensors
from posgrade.diagnosis.compare import assert_close, fail
from posgrade.kit.wire import Gen

EXERCISE = "batches"


def stream(gen, n, device="cpu"):
    """n distinct token ids, shuffled, offset so that no token equals its index."""
    return (torch.randperm(n, generator=gen) + 1000).to(device)


def draw(learner, data, batch_size, context_length, seed=None):
    out = learner.get_batch(data, batch_size, context_length, generator=None if seed is None else Gen(seed))
    return tensors(out, 2, f"get_batch(data, {batch_size}, {context_length})")


def starts_of(x, data):
    """The start index in data of each row of x (by its first token), or fail."""
    where = torch.full((int(data.max()) + 1,), -1, dtype=torch.long)
    where[data.cpu()] = torch.arange(data.numel())
    first = x[:, 0].cpu()
    if (first < 0).any() or (first >= where.numel()).any() or (where[first.clamp(0, where.numel() - 1)] < 0).any():
        fail("some rows of x start with a token that is not in data")
    return where[first]


@points(2)
@pytest.mark.parametrize("batch_size,context_length", [(4, 8), (1, 1), (16, 3)])
def test_shapes(learner, device, gen, seed, batch_size, context_length):
    """x and y are LongTensors [batch_size, context_length] on data's device"""
    data = stream(gen, 100, device)
    x, y = draw(learner, data, batch_size, context_length, seed)
    want = torch.empty(batch_size, context_length, dtype=torch.long, device=device)
    for name, t in (("x", x), ("y", y)):
        if t.shape != want.shape:
            fail(f"{name} has shape {list(t.shape)}, expected [batch_size, context_length] = {list(want.shape)}")
        if t.dtype != torch.long:
            fail(f"{name} has dtype {t.dtype}, expected torch.int64 (token ids index an embedding)")
        if t.device.type != device:
            fail(f"{name} is on {t.device}, expected it on data's device ({device})")


@points(3)
def test_windows(learner, device, gen, seed):
    """each row of x is a contiguous window of data"""
    data = stream(gen, 200, device)
    x, y = draw(learner, data, 32, 10, seed)
    s = starts_of(x, data)
    idx = s[:, None] + torch.arange(10)
    if (idx >= data.numel()).any():
        fail("a row of x runs past the end of data")
    assert_close(x, data.cpu()[idx].to(x.device), what="x (row r should be data[s_r : s_r + L])")


@points(3)
def test_targets_shifted(learner, device, gen, seed):
    """y is x shifted by one token: y[r] = data[s_r + 1 : s_r + L + 1]"""
    data = stream(gen, 200, device)
    x, y = draw(learner, data, 32, 10, seed)
    s = starts_of(x, data)
    idx = s[:, None] + torch.arange(1, 11)
    if (idx >= data.numel()).any():
        fail("a target window runs past the end of data: the last valid start is N - L - 1")
    if y.shape == x.shape and torch.equal(y, x):
        fail("y equals x: the target is the next token, so y must be the window shifted by one")
    assert_close(y, data.cpu()[idx].to(y.device), what="y (row r should be data[s_r + 1 : s_r + L + 1])")


@points(3)
def test_every_start_reachable(learner, gen, seed):
    """every valid start 0 .. N - L - 1 is drawn, the last one included"""
    n, length = 12, 4  # valid starts 0..7
    data = stream(gen, n)
    x, _ = draw(learner, data, 2000, length, seed)
    counts = torch.bincount(starts_of(x, data), minlength=n)
    missing = [i for i in range(n - length) if counts[i] == 0]
    if missing:
        fail(f"with N={n} and L={length} the valid starts are 0..{n - length - 1}, but in 2000 draws "
             f"start(s) {missing} never came up (is torch.randint's high bound exclusive in your call?)")
    beyond = [i for i in range(n - length, n) if counts[i]]
    if beyond:
        fail(f"start(s) {beyond} were drawn, but a window starting there has no target for its last token")


@points(2)
def test_uniform_starts(learner, gen, seed):
    """starts are drawn uniformly over the valid ones"""
    n, length, draws = 20, 4, 4000  # 16 valid starts, 250 expected each
    data = stream(gen, n)
    x, _ = draw(learner, data, draws, length, seed)
    counts = torch.bincount(starts_of(x, data), minlength=n)[: n - length].double()
    expected = draws / (n - length)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 15 degrees of freedom: P(chi2 > 60) is about 1e-7 for a uniform draw
    if chi2 > 60:
        fail(f"the start counts are far from uniform (chi-square {chi2:.0f} on 15 degrees of freedom; "
             f"a uniform draw stays below 60): counts {counts.long().tolist()}")


@points(2)
def test_rows_independent(learner, gen, seed):
    """rows are drawn independently: not one start for the whole batch, not consecutive chunks"""
    data = stream(gen, 20000)
    x, _ = draw(learner, data, 64, 8, seed)
    s = starts_of(x, data)
    distinct = int(torch.unique(s).numel())
    if distinct < 48:  # 64 independent draws from ~20000 starts collide rarely
        fail(f"only {distinct} distinct starts among 64 rows: draw one start per row")
    steps = torch.unique(s[1:] - s[:-1])
    if steps.numel() == 1:
        fail(f"every row starts {int(steps[0])} tokens after the previous one: the rows are consecutive "
             "chunks of one window, not independent draws")


@points(2)
def test_generator_reproducible(learner, gen, seed):
    """the same generator seed gives the same batch, and a different seed another"""
    data = stream(gen, 500)
    x1, y1 = draw(learner, data, 16, 8, seed)
    x2, y2 = draw(learner, data, 16, 8, seed)
    if x1.shape != x2.shape or not (torch.equal(x1, x2) and torch.equal(y1, y2)):
        fail("two calls with generators of the same seed gave different batches: pass generator= to "
             "every random draw (torch.randint(..., generator=generator))")
    x3, _ = draw(learner, data, 16, 8, seed + 1)
    if torch.equal(x1, x3):
        fail("generators of different seeds gave the same batch: is the generator used at all?")


@points(1)
def test_without_generator(learner, gen):
    """generator=None draws from torch's global RNG and still gives valid windows"""
    data = stream(gen, 100)
    x, y = draw(learner, data, 8, 5)
    s = starts_of(x, data)
    idx = s[:, None] + torch.arange(5)
    if (idx + 1 >= data.numel()).any():
        fail("a window runs past the end of data")
    assert_close(y, data[idx + 1], what="y without a generator")


@points(1)
def test_shortest_stream(learner, gen, seed):
    """data of exactly context_length + 1 tokens has one window: start 0"""
    data = stream(gen, 6)
    x, y = draw(learner, data, 3, 5, seed)
    assert_close(x, data[:5].expand(3, 5), what="x when only start 0 is valid")
    assert_close(y, data[1:].expand(3, 5), what="y when only start 0 is valid")


@points(1)
@pytest.mark.parametrize("bad", ["data-2d", "batch_size-0", "context_length-0"])
def test_bad_arguments(learner, gen, seed, bad):
    """2-D data, batch_size < 1 or context_length < 1 raises ValueError"""
    data = stream(gen, 40)
    data, batch_size, context_length = {"data-2d": (data.view(4, 10), 2, 3), "batch_size-0": (data, 0, 3),
                                        "context_length-0": (data, 2, 0)}[bad]
    expect_error(lambda: draw(learner, data, batch_size, context_length, seed), "ValueError",
                 f"get_batch(data {list(data.shape)}, {batch_size}, {context_length})")


@points(1)
@pytest.mark.parametrize("n,context_length", [(5, 5), (2, 8)])
def test_too_short(learner, gen, seed, n, context_length):
    """data too short for one window and its target raises ValueError"""
    data = stream(gen, n)
    expect_error(lambda: draw(learner, data, 2, context_length, seed), "ValueError",
                 f"get_batch with {n} tokens and context_length={context_length}")


@points(1)
def test_efficiency(learner, gen, seed):
    """runs within 20x of the reference's time on a large stream"""
    small = stream(gen, 50)
    x, y = draw(learner, small, 4, 5, seed)
    idx = starts_of(x, small)[:, None] + torch.arange(1, 6)
    if (idx >= small.numel()).any():
        fail("a window of x starts too late for its target y to fit in data (the large input is timed "
             "only once a small one is right)")
    assert_close(y, small[idx], what="y (the large input is timed only once a small one is right)")
    data = stream(gen, 100_000)
    assert_fast(learner, "get_batch(data of 100k tokens, 256, 64)", attr="get_batch",
                args=(data, 256, 64), kwargs={"generator": Gen(seed)})
