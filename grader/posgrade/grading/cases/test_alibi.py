"""Hidden cases for the alibi exercise.

The slopes are graded value by value against the reference, for every n_heads from 1 to 64.
The bias is graded on what it does: the attention probabilities it gives, softmax over the
allowed keys of random logits plus the bias. Real implementations differ from the docstring's
-slope·|q_pos(i) - j| by a constant in each row (fairseq and BLOOM add +slope·j, MPT
slope·(j - (Lk - 1))), which softmax ignores, so those cases accept every one of them; one
small case (test_bias_exact_form) asks for the docstring's exact form and says why.

Tolerance: the probabilities are computed here in float64 from the float32 bias, so they
are held to float32's precision (PROB_TOL), not float64's.
"""

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn
from posgrade.diagnosis.compare import assert_close, check_tensor, fail

EXERCISE = "alibi"
PROB_TOL = {"rtol": 1e-5, "atol": 1e-6}
POWERS_OF_TWO = [8, 1, 2, 4, 16, 32, 64]  # 8 first: its slopes 1/2 .. 1/256 are the paper's example


def host(t):
    return t.detach().to("cpu", torch.float64)


def slopes_of(impl, n_heads, **kw):
    out = impl.alibi_slopes(n_heads, **kw)
    check_tensor(out, f"alibi_slopes({n_heads})")
    return out


def bias_of(impl, n_heads, len_q, len_k, **kw):
    what = f"alibi_bias({n_heads}, {len_q}, {len_k})"
    out = impl.alibi_bias(n_heads, len_q, len_k, **kw)
    check_tensor(out, what)
    if list(out.shape) != [n_heads, len_q, len_k]:
        fail(f"{what} has shape {list(out.shape)}, expected [n_heads, len_q, len_k] = {[n_heads, len_q, len_k]}")
    return out


def causal(len_q, len_k):
    """Query i (at len_k - len_q + i) may attend keys j <= len_k - len_q + i."""
    return torch.ones(len_q, len_k, dtype=torch.bool).tril(len_k - len_q)


def probabilities(bias, logits, mask=None):
    """softmax over the keys of logits + bias, masked keys excluded, in float64."""
    z = logits + host(bias)
    if mask is not None:
        z = z.masked_fill(~mask, float("-inf"))
    return torch.softmax(z, dim=-1)


def close(got, want, rtol=1e-5, atol=1e-6):
    return got.shape == want.shape and torch.allclose(got, want, rtol=rtol, atol=atol)


# -- alibi_slopes --------------------------------------------------------------------------------

@points(3)
def test_slopes_power_of_two(learner, ref):
    """for a power of two n the slopes are 2^(-8h/n) for h = 1 .. n (the first is below 1)"""
    for n in POWERS_OF_TWO:
        got, want = slopes_of(learner, n), slopes_of(ref, n)
        if got.shape == want.shape and got.numel() and abs(float(got[0]) - 1) < 1e-6:
            fail(f"alibi_slopes({n})[0] is 1: the powers run over h = 1 .. n, so the first head's slope is "
                 f"2^(-8/n) = {float(want[0]):.6g} and the last 2^-8 (an exponent from h = 0 loses 2^-8)")
        assert_close(got, want, what=f"alibi_slopes({n})")


@points(4)
def test_slopes_not_power_of_two(learner, ref):
    """for other n, the slopes of the power of two below, then every other slope of the next one"""
    for n in (n for n in range(1, 65) if n not in POWERS_OF_TWO):
        got, want = slopes_of(learner, n), slopes_of(ref, n)
        geometric = 2.0 ** (-8.0 * torch.arange(1, n + 1, dtype=torch.float64) / n)
        if close(host(got), geometric):
            c = 2 ** (n.bit_length() - 1)
            fail(f"alibi_slopes({n}) is 2^(-8h/{n}) for h = 1..{n}: that rule holds only when n is a power of "
                 f"two. For n = {n}: the {c} slopes of alibi_slopes({c}), then every other slope of "
                 f"alibi_slopes({2 * c}) (taken with [0::2]) for the remaining {n - c}")
        assert_close(got, want, what=f"alibi_slopes({n})")


@points(2)
def test_slopes_extra_heads_are_new(learner, ref):
    """the extra heads of a non-power-of-two n get slopes between the others, not repeats"""
    for n_heads in (12, 3, 6, 24, 40):
        got, want = slopes_of(learner, n_heads), slopes_of(ref, n_heads)
        c = 2 ** (n_heads.bit_length() - 1)
        if got.shape == want.shape:
            first, extra = host(got[:c]), host(got[c:])
            repeated = [float(s) for s in extra if ((first - s).abs() < 1e-7 * s).any()]
            if repeated:
                fail(f"alibi_slopes({n_heads}): the extra heads {c}..{n_heads - 1} repeat slopes that heads "
                     f"0..{c - 1} already have (e.g. {repeated[0]:.6g}): of the {2 * c}-head sequence take "
                     "[0::2], the odd powers, which fall between the existing slopes; [1::2] gives the even "
                     "powers again")
        assert_close(got, want, what=f"alibi_slopes({n_heads})")


@points(1)
def test_slopes_device(learner, ref, device):
    """alibi_slopes(..., device=) creates the slopes there, in float32"""
    got = slopes_of(learner, 12, device=device)
    assert_close(got, slopes_of(ref, 12, device=device), what=f"alibi_slopes(12, device={device!r})")


# -- alibi_bias ----------------------------------------------------------------------------------

def graded_attention(learner, ref, gen, n_heads, len_q, len_k, mask):
    """(learner's probabilities, reference's, the logits) for random logits plus each bias."""
    logits = randn(gen, n_heads, len_q, len_k, dtype=torch.float64)
    got = probabilities(bias_of(learner, n_heads, len_q, len_k), logits, mask)
    want = probabilities(bias_of(ref, n_heads, len_q, len_k), logits, mask)
    return got, want, logits


@points(3)
@pytest.mark.parametrize("n_heads,length", [(4, 6), (8, 9), (12, 5), (1, 4)])
def test_bias_probabilities(learner, ref, gen, n_heads, length):
    """under a causal mask the bias gives the attention of -slope·distance"""
    got, want, _ = graded_attention(learner, ref, gen, n_heads, length, length, causal(length, length))
    assert_close(got, want, what=f"softmax(logits + alibi_bias({n_heads}, {length}, {length})) under a causal mask",
                 **PROB_TOL)


@points(2)
def test_bias_sign(learner, ref):
    """distant keys are penalised (-slope·distance), not rewarded"""
    H, L = 4, 8
    got = probabilities(bias_of(learner, H, L, L), torch.zeros(H, L, L), causal(L, L))
    want = probabilities(bias_of(ref, H, L, L), torch.zeros(H, L, L), causal(L, L))
    # with equal logits a query attends most to itself; with +slope·distance to key 0
    last = got[:, -1]
    if (last[:, 0] > last[:, -1]).all():
        fail("with equal logits the last query attends most to the FIRST key: your bias rewards distance. "
             "ALiBi adds -slope·|q_pos(i) - j|, which is 0 at the query's own position and more negative "
             "the farther the key")
    assert_close(got, want, what=f"softmax(alibi_bias({H}, {L}, {L})) under a causal mask", **PROB_TOL)


@points(2)
@pytest.mark.parametrize("len_q,len_k", [(1, 8), (3, 10)])
def test_bias_query_offset(learner, ref, gen, len_q, len_k):
    """with a KV cache (Lq < Lk) query i sits at position len_k - len_q + i"""
    H = 8
    got, want, logits = graded_attention(learner, ref, gen, H, len_q, len_k, causal(len_q, len_k))
    # the same queries placed at positions 0 .. Lq - 1: the first rows of the square bias
    at_start = probabilities(bias_of(ref, H, len_k, len_k)[:, :len_q], logits, causal(len_q, len_k))
    if close(got, at_start) and not close(got, want):
        fail(f"alibi_bias({H}, {len_q}, {len_k}) places query i at position i: with a KV cache the queries are "
             f"the LAST {len_q} of the {len_k} positions, q_pos(i) = len_k - len_q + i = {len_k - len_q} + i, "
             f"and the distance is |q_pos(i) - j|, with the same alignment as causal_mask({len_q}, {len_k})")
    assert_close(got, want, what=f"softmax(logits + alibi_bias({H}, {len_q}, {len_k})) under a causal mask",
                 **PROB_TOL)


@points(2)
@pytest.mark.parametrize("len_q,len_k", [(6, 6), (3, 7)])
def test_bias_bidirectional(learner, ref, gen, len_q, len_k):
    """without a causal mask keys after the query are penalised too: the distance is |q_pos(i) - j|"""
    H = 4
    got, want, _ = graded_attention(learner, ref, gen, H, len_q, len_k, None)
    if not close(got, want):
        b = host(bias_of(learner, H, len_q, len_k))
        q_pos = torch.arange(len_k - len_q, len_k)[:, None]
        after = torch.arange(len_k)[None, :] > q_pos  # keys after the query
        d = b - b.gather(-1, q_pos[None].expand(H, len_q, 1))  # relative to the bias at the query's own key
        if after.any() and (d[:, after] > 0).any() and (d[:, ~after] <= 1e-6).all():
            fail(f"alibi_bias({H}, {len_q}, {len_k}) raises the logits of keys AFTER the query: the ramp "
                 "-slope·(q_pos(i) - j) (or +slope·j) equals -slope·|q_pos(i) - j| only under a causal mask; "
                 "take the absolute distance so attention without a mask (an encoder) penalises both sides")
    assert_close(got, want, what=f"softmax(logits + alibi_bias({H}, {len_q}, {len_k})) without a mask", **PROB_TOL)


@points(1)
def test_bias_exact_form(learner, ref):
    """alibi_bias is exactly -slope·|q_pos(i) - j|, as its docstring says"""
    H, Lq, Lk = 4, 3, 5
    got, want = bias_of(learner, H, Lq, Lk), bias_of(ref, H, Lq, Lk)
    g, w = host(got), host(want)
    mask = causal(Lq, Lk)
    diff = (g - w).masked_fill(~mask, 0.0)
    shift = diff[..., :1]  # key 0 is allowed for every query
    if not close(g, w) and torch.allclose(diff, shift.expand_as(diff).masked_fill(~mask, 0.0), atol=1e-5):
        fail(f"alibi_bias({H}, {Lq}, {Lk}) differs from -slope·|q_pos(i) - j| by a constant in each row over the "
             "keys a causal mask allows (as the ramps of fairseq, BLOOM and MPT do). Softmax ignores such a "
             "constant, which is why the attention cases pass, but the docstring asks for exactly "
             "-slope·|q_pos(i) - j|: 0 at the query's own position, symmetric, and right without a mask too")
    assert_close(got, want, what=f"alibi_bias({H}, {Lq}, {Lk})")


@points(1)
def test_bias_device(learner, ref, gen, device):
    """alibi_bias(..., device=) creates the bias there, in float32"""
    H, Lq, Lk = 4, 3, 5
    got = bias_of(learner, H, Lq, Lk, device=device)
    what = f"alibi_bias({H}, {Lq}, {Lk}, device={device!r})"
    if got.device.type != device:
        fail(f"{what} is on {got.device}: create the positions and slopes on the device you are given")
    if got.dtype != torch.float32:
        fail(f"{what} has dtype {got.dtype}, expected torch.float32")
    logits = randn(gen, H, Lq, Lk, dtype=torch.float64)
    want = probabilities(bias_of(ref, H, Lq, Lk, device=device), logits, causal(Lq, Lk))
    assert_close(probabilities(got, logits, causal(Lq, Lk)), want, what=f"softmax(logits + {what})", **PROB_TOL)


@points(1)
@pytest.mark.parametrize("call", ["alibi_slopes(0)", "alibi_bias(0, 2, 2)", "alibi_bias(2, 5, 3)",
                                  "alibi_bias(2, -1, 3)"])
def test_bad_arguments(learner, call):
    """n_heads < 1, a negative length or len_q > len_k raises ValueError"""
    name, args = call.split("(")
    args = [int(a) for a in args.rstrip(")").split(",")]
    expect_error(lambda: getattr(learner, name)(*args), "ValueError", call)


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    logits, mask = torch.randn(4, 3, 5, generator=gen, dtype=torch.float64), causal(3, 5)
    assert_close(probabilities(bias_of(learner, 4, 3, 5), logits, mask),
                 probabilities(bias_of(ref, 4, 3, 5), logits, mask), what="alibi_bias(4, 3, 5)'s probabilities (the large input is timed only once a small one is right)")
    assert_fast(learner, "alibi_bias(8, 512, 512)", attr="alibi_bias", args=(8, 512, 512))
