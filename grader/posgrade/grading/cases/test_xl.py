"""Hidden cases for the xl exercise: Transformer-XL / XLNet relative attention.

rel_shift moves data without arithmetic, so it must match exactly; its main case feeds
index-encoded scores (1000 * row + distance) whose every output entry says which query and
which distance it came from, and the expected value, 1000 * i + (q_pos(i) - j), is written
from the definition, not from the reference. The sinusoid is checked against its formula in
float64 (sines first) and the reference; the attention against the reference on the same
random q, k, v, r, u, v, and by a property: queries after a memory attend exactly as the last
rows of the same sequence attended without one.

Tolerance: a float32 angle pos * inv_freq is off by about pos * 2^-24, so the sinusoid cases
widen atol by POS_ATOL * max |pos| (as the sinusoidal exercise does).
"""

import math

import pytest
import torch

from posgrade.diagnosis.compare import assert_close, check_tensor, fail
from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors

EXERCISE = "xl"
POS_ATOL = 1e-7  # per unit of distance


def inv_freq(d, dtype=torch.float32, device="cpu"):
    """Transformer-XL's frequencies 1 / 10000^(2i / d) for i = 0 .. d/2 - 1."""
    return (1.0 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)).to(device=device, dtype=dtype)


def distances(klen, qlen, dtype=torch.float32, device="cpu"):
    """XLNet's pos_seq: klen, klen - 1, ..., -qlen + 1."""
    return torch.arange(klen, -qlen, -1, device=device).to(dtype)


def posemb(impl, pos_seq, freqs):
    what = f"xl_positional_embedding(pos_seq [{pos_seq.numel()}], inv_freq [{freqs.numel()}])"
    out = impl.xl_positional_embedding(pos_seq, freqs)
    check_tensor(out, what)
    return out, what


def shift(impl, x, klen):
    what = f"rel_shift(x {list(x.shape)}, klen={klen})"
    out = impl.rel_shift(x, klen)
    check_tensor(out, what)
    return out, what


def inputs(gen, device, batch, heads, len_q, mlen, d, d_v=None, dtype=torch.float32):
    """Random q, k, v, r, r_w_bias, r_r_bias as xl_relative_attention takes them (Lk = mlen + Lq)."""
    d_v = d if d_v is None else d_v
    len_k = mlen + len_q
    q = randn(gen, batch, heads, len_q, d, device=device, dtype=dtype)
    k = randn(gen, batch, heads, len_k, d, device=device, dtype=dtype)
    v = randn(gen, batch, heads, len_k, d_v, device=device, dtype=dtype)
    r = randn(gen, heads, len_k + len_q, d, device=device, dtype=dtype)
    u = randn(gen, heads, d, device=device, dtype=dtype)
    w = randn(gen, heads, d, device=device, dtype=dtype)
    return q, k, v, r, u, w


def describe(q, k, v, r, mask=None):
    parts = [f"q {list(q.shape)}", f"k {list(k.shape)}", f"v {list(v.shape)}", f"r {list(r.shape)}"]
    if mask is not None:
        parts.append(f"mask {list(mask.shape)}")
    return f"xl_relative_attention({', '.join(parts)}, ...)"


def attend(impl, q, k, v, r, u, w, mask=None):
    return tensors(impl.xl_relative_attention(q, k, v, r, u, w, mask), 2, describe(q, k, v, r, mask))


def random_mask(gen, shape, device):
    """True = may attend; about one key in three masked."""
    return (torch.rand(*shape, generator=gen) > 0.35).to(device)


def close(a, b, atol=1e-5):
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a.cpu().double(), b.cpu().double(), atol=atol)


# -- xl_positional_embedding --------------------------------------------------------------------

@points(2)
@pytest.mark.parametrize("klen,qlen,d", [(5, 3, 8), (1, 1, 2), (12, 4, 16), (40, 24, 64)])
def test_positional_embedding(learner, ref, device, klen, qlen, d):
    """xl_positional_embedding gives cat(sin(pos ⊗ inv_freq), cos(pos ⊗ inv_freq)) [len, d]"""
    pos_seq, freqs = distances(klen, qlen, device=device), inv_freq(d, device=device)
    got, what = posemb(learner, pos_seq, freqs)
    assert_close(got, ref.xl_positional_embedding(pos_seq, freqs), what=what, atol_extra=POS_ATOL * klen)


@points(2)
def test_sines_then_cosines(learner, ref):
    """the first d/2 columns are sines, the last d/2 cosines (not interleaved, not cos first)"""
    pos_seq, freqs = distances(6, 3), inv_freq(8)
    got, what = posemb(learner, pos_seq, freqs)
    angle = pos_seq.double()[:, None] * freqs.double()[None, :]  # [9, 4]
    sin, cos = angle.sin(), angle.cos()
    if got.shape == (9, 8) and got.is_floating_point():
        g = got.cpu().double()
        if torch.allclose(g, torch.stack((sin, cos), -1).flatten(-2), atol=1e-5):
            fail(f"{what}: the columns alternate sin, cos, sin, cos, ... (Vaswani et al.'s table); "
                 "Transformer-XL and XLNet put all sines first: cat(sin(angle), cos(angle), dim=-1)")
        if torch.allclose(g, torch.cat((cos, sin), -1), atol=1e-5):
            fail(f"{what}: the first d/2 columns hold cosines and the last d/2 sines; the order is "
                 "cat(sin(angle), cos(angle)), so the row for distance 0 is [0, ..., 0, 1, ..., 1]")
    assert_close(got, ref.xl_positional_embedding(pos_seq, freqs), what=what, atol_extra=POS_ATOL * 6)


@points(1)
@pytest.mark.parametrize("pos_dtype,freq_dtype", [(torch.int64, torch.float32), (torch.float64, torch.float64)],
                         ids=["int64-float32", "float64"])
def test_positional_embedding_dtype(learner, ref, device, pos_dtype, freq_dtype):
    """the result takes torch's promotion of pos_seq * inv_freq (integer distances: inv_freq's dtype)"""
    pos_seq, freqs = distances(9, 5, dtype=pos_dtype, device=device), inv_freq(16, freq_dtype, device)
    got, what = posemb(learner, pos_seq, freqs)
    want = ref.xl_positional_embedding(pos_seq, freqs)
    if got.dtype != want.dtype:
        fail(f"{what} with {str(pos_dtype)[6:]} distances and {str(freq_dtype)[6:]} frequencies is "
             f"{str(got.dtype)[6:]}, expected {str(want.dtype)[6:]}: pos_seq[:, None] * inv_freq[None, :] "
             "already has the right dtype; do not cast it")
    assert_close(got, want, what=what, atol_extra=POS_ATOL * 9)


# -- rel_shift ----------------------------------------------------------------------------------

SHIFT_SHAPES = {  # id: (leading dims, qlen, mlen); klen = mlen + qlen
    "no-memory": ((), 4, 0),
    "memory": ((), 3, 5),
    "one-query": ((), 1, 6),
    "one-query-no-memory": ((), 1, 0),
    "batch-heads": ((2, 3), 5, 2),
    "batch": ((2,), 4, 4),
}


def encoded(lead, qlen, klen, device="cpu"):
    """x[..., i, c] = 1000 * i + (klen - c): the query row and the distance of every column."""
    i = torch.arange(qlen)[:, None]
    c = torch.arange(klen + qlen)[None, :]
    return (1000 * i + (klen - c)).expand(*lead, qlen, klen + qlen).contiguous().to(device)


def decode(value):
    """(row, distance) of an index-encoded entry."""
    row = (value + 500) // 1000
    return row, value - 1000 * row


@points(3)
@pytest.mark.parametrize("shape", list(SHIFT_SHAPES))
def test_rel_shift_index_encoded(learner, ref, device, shape):
    """rel_shift puts distance q_pos(i) - j in column j of row i (scores encoded 1000 * row + distance)"""
    lead, qlen, mlen = SHIFT_SHAPES[shape]
    klen = mlen + qlen
    x = encoded(lead, qlen, klen, device)
    got, what = shift(learner, x, klen)
    i, j = torch.arange(qlen)[:, None], torch.arange(klen)[None, :]
    want = (1000 * i + (mlen + i - j)).expand(*lead, qlen, klen)  # query i at mlen + i, key j
    if got.shape == want.shape and got.dtype == x.dtype:
        bad = (got.cpu() != want).nonzero()
        if len(bad):
            at = tuple(int(t) for t in bad[0])
            row, dist = decode(int(got.cpu()[at]))
            i0, j0 = at[-2], at[-1]
            fail(f"{what} on scores x[..., i, c] = 1000 * i + (klen - c) (column c is distance klen - c): "
                 f"out{list(at)} holds query {row}'s score at distance {dist}; query {i0} sits at position "
                 f"klen - qlen + {i0} = {mlen + i0}, so key {j0} is at distance {mlen + i0 - j0}, which "
                 f"is column {j0 + qlen - i0} of x: out[..., i, j] = x[..., i, j + qlen - i]")
    assert_close(got, ref.rel_shift(x, klen), what=what)


@points(2)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64],
                         ids=lambda d: str(d).removeprefix("torch."))
def test_rel_shift_values(learner, ref, device, gen, dtype):
    """rel_shift moves scores without changing them, in x's dtype and on its device"""
    x = randn(gen, 2, 3, 5, 12, device=device, dtype=dtype)  # qlen 5, klen 7
    got, what = shift(learner, x, 7)
    assert_close(got, ref.rel_shift(x, 7), what=what, rtol=0.0, atol=0.0)


# -- xl_relative_attention ------------------------------------------------------------------

ATTENTION_SHAPES = {  # id: (B, H, Lq, mlen, d, dv)
    "no-memory": (2, 2, 5, 0, 8, 8),
    "memory": (2, 3, 4, 6, 8, 8),
    "one-query": (2, 2, 1, 7, 8, 8),
    "dv-not-d": (1, 2, 4, 3, 8, 6),
}


@points(4)
@pytest.mark.parametrize("shape", list(ATTENTION_SHAPES))
def test_attention_values(learner, ref, device, gen, shape):
    """xl_relative_attention gives softmax(((q + u)·kᵀ + rel_shift((q + v)·rᵀ)) / sqrt(d))·v"""
    b, h, lq, mlen, d, dv = ATTENTION_SHAPES[shape]
    args = inputs(gen, device, b, h, lq, mlen, d, dv)
    what = describe(*args[:4])
    out, weights = attend(learner, *args)
    want_out, want_weights = ref.xl_relative_attention(*args)
    assert_close(weights, want_weights, what=f"the weights of {what}")
    assert_close(out, want_out, what=f"the output of {what}")


@points(2)
def test_content_bias(learner, ref, device, gen):
    """u (r_w_bias) is added to q in the content term (q + u)·kᵀ (here r_r_bias = 0)"""
    q, k, v, r, u, w = inputs(gen, device, 2, 2, 4, 3, 8)
    w = torch.zeros_like(w)
    what = describe(q, k, v, r) + " with r_r_bias = 0"
    _, weights = attend(learner, q, k, v, r, 2 * u, w)
    assert_close(weights, ref.xl_relative_attention(q, k, v, r, 2 * u, w)[1], what=f"the weights of {what}")


@points(2)
def test_position_bias(learner, ref, device, gen):
    """v (r_r_bias) is added to q in the position term (q + v)·rᵀ (here v is larger than u)"""
    q, k, v, r, u, w = inputs(gen, device, 2, 2, 4, 3, 8)
    u = u / 2  # not 0: with u = 0, v on the content term would look like u and v swapped
    what = describe(q, k, v, r) + " with a large r_r_bias"
    _, weights = attend(learner, q, k, v, r, u, 2 * w)
    assert_close(weights, ref.xl_relative_attention(q, k, v, r, u, 2 * w)[1], what=f"the weights of {what}")


def softmax_weights(q, k, r, u, w, scale_ac, scale_bd):
    """The expected weights in float64, the shift written as an index: column j + qlen - i."""
    q, k, r, u, w = (t.double().cpu() for t in (q, k, r, u, w))
    len_q, len_k = q.shape[-2], k.shape[-2]
    ac = (q + u[:, None]) @ k.transpose(-2, -1)
    full = (q + w[:, None]) @ r.transpose(-2, -1)  # [..., Lq, Lk + Lq]
    i, j = torch.arange(len_q)[:, None], torch.arange(len_k)[None, :]
    bd = full[..., i, j + len_q - i]
    return torch.softmax(ac * scale_ac + bd * scale_bd, dim=-1)


@points(2)
def test_logits_scaled_by_sqrt_d(learner, ref, device, gen):
    """the whole logit, content and position terms, is divided by sqrt(d)"""
    q, k, v, r, u, w = inputs(gen, device, 2, 2, 4, 2, 64)
    what = describe(q, k, v, r)
    _, weights = attend(learner, q, k, v, r, u, w)
    _, want = ref.xl_relative_attention(q, k, v, r, u, w)
    s = 1 / math.sqrt(64)
    if weights.shape == want.shape and weights.dtype == want.dtype:
        if close(weights, softmax_weights(q, k, r, u, w, s, 1.0).to(weights.dtype)):
            fail(f"the weights of {what} divide only the content term by sqrt(d); the position term "
                 "must be scaled too: (AC + BD) / sqrt(d)")
        if close(weights, softmax_weights(q, k, r, u, w, 1.0, 1.0).to(weights.dtype)):
            fail(f"the weights of {what} are not scaled: divide the logits AC + BD by sqrt(d), with d "
                 "the head width q.shape[-1]")
    assert_close(weights, want, what=f"the weights of {what}")


@points(3)
@pytest.mark.parametrize("len_q,mlen", [(3, 4), (1, 5)])
def test_memory_alignment(learner, device, gen, len_q, mlen):
    """queries after a memory attend as the last rows of the same sequence attended without one"""
    h, d, len_k = 2, 8, mlen + len_q
    q_all, k, v, _, u, w = inputs(gen, device, 2, h, len_k, 0, d)
    table = randn(gen, h, 2 * len_k + 1, d, device=device)  # row len_k + n: distance n
    r_all = table[:, len_k + distances(len_k, len_k, torch.long, device)]  # distances Lk .. -Lk + 1
    r_mem = table[:, len_k + distances(len_k, len_q, torch.long, device)]  # distances Lk .. -Lq + 1
    q = q_all[..., mlen:, :]
    out_all, weights_all = attend(learner, q_all, k, v, r_all, u, w)
    out, weights = attend(learner, q, k, v, r_mem, u, w)
    for got, full, name in ((weights, weights_all, "weights"), (out, out_all, "output")):
        want = full[..., mlen:, :]
        if got.shape != want.shape or not torch.allclose(got.cpu().double(), want.cpu().double(), atol=1e-5):
            fail(f"{len_k} queries over the same {len_k} keys (no memory, r for distances {len_k} .. "
                 f"{-len_k + 1}) and the last {len_q} of them after a memory of {mlen} (r for distances "
                 f"{len_k} .. {-len_q + 1}) give different {name} for those {len_q} queries; query i "
                 f"after the memory sits at position mlen + i and sees key j at distance mlen + i - j: "
                 "check rel_shift on a memory (klen > qlen)")


MASKS = ["qk", "b1qk", "xl-causal", "key-padding"]


@points(2)
@pytest.mark.parametrize("kind", MASKS)
def test_mask(learner, ref, device, gen, kind):
    """a bool mask (True = may attend, broadcast) keeps the other keys out of the softmax"""
    b, h, lq, mlen = 2, 2, 4, 3
    args = inputs(gen, device, b, h, lq, mlen, 8)
    lk = lq + mlen
    if kind == "xl-causal":  # Transformer-XL: query i sees the memory and keys up to its own position
        mask = (torch.arange(lk)[None, :] <= mlen + torch.arange(lq)[:, None]).to(device)
    else:
        shape = {"qk": (lq, lk), "b1qk": (b, 1, lq, lk), "key-padding": (b, 1, 1, lk)}[kind]
        mask = random_mask(gen, shape, "cpu")
        mask[..., 0] = True  # every row keeps a key
        mask = mask.to(device)
    what = describe(*args[:4], mask)
    out, weights = attend(learner, *args, mask)
    want_out, want_weights = ref.xl_relative_attention(*args, mask)
    assert_close(weights, want_weights, what=f"the weights of {what}")
    assert_close(out, want_out, what=f"the output of {what}")


@points(2)
def test_fully_masked_row(learner, ref, device, gen):
    """a query with no allowed key gets zero weights and a zero output, not NaN"""
    q, k, v, r, u, w = inputs(gen, device, 2, 2, 4, 2, 8)
    mask = random_mask(gen, (4, 6), "cpu")
    mask[:, 0] = True  # every other row keeps a key
    mask[1] = False  # query 1 may attend nothing
    mask = mask.to(device)
    what = describe(q, k, v, r, mask)
    out, weights = attend(learner, q, k, v, r, u, w, mask)
    want_out, want_weights = ref.xl_relative_attention(q, k, v, r, u, w, mask)
    if weights.shape == want_weights.shape and out.shape == want_out.shape:
        w1, o1 = weights[..., 1, :].double(), out[..., 1, :].double()
        if torch.isnan(w1).any() or torch.isnan(o1).any():
            fail(f"{what}: query 1 has no allowed key and its weights and output are NaN (a softmax of "
                 "only -inf). Give such a row zero weights and a zero output: mask with a large finite "
                 "negative (torch.finfo(dtype).min) or zero the fully masked rows after the softmax")
        if (w1 != 0).any() or (o1 != 0).any():
            fail(f"{what}: query 1 has no allowed key, so its weights and output must be all zeros; yours "
                 f"have weights summing to {float(w1.sum(-1).max()):.3g}: zero the masked weights after "
                 "the softmax")
    assert_close(weights, want_weights, what=f"the weights of {what}")
    assert_close(out, want_out, what=f"the output of {what}")


@points(1)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64],
                         ids=lambda d: str(d).removeprefix("torch."))
def test_attention_dtype(learner, ref, device, gen, dtype):
    """out and weights keep q's dtype (float16, bfloat16, float64)"""
    args = inputs(gen, device, 2, 2, 4, 3, 16, dtype=dtype)
    mask = random_mask(gen, (4, 7), device)
    mask[..., 0] = True
    name = str(dtype).removeprefix("torch.")
    what = f"{describe(*args[:4], mask)} with {name} inputs"
    out, weights = attend(learner, *args, mask)
    for t, part in ((out, "output"), (weights, "weights")):
        if t.dtype != dtype:
            fail(f"the {part} of {what} is {str(t.dtype).removeprefix('torch.')}; return q's dtype "
                 "(a softmax in float32 is fine, cast the result back)")
    if dtype == torch.float64:
        want_out, want_weights = ref.xl_relative_attention(*args, mask)
        rtol, atol, extra_out, extra_w = 1.3e-6, 1e-5, 0.0, 0.0  # float32's tolerance: no more is asked
    else:
        # half inputs: graded against the float32 reference rounded to the dtype; the reference in
        # half precision rounds at other steps, and any order within twice its distance is accepted
        f32 = [t.float() for t in args]
        want_out, want_weights = (t.to(dtype) for t in ref.xl_relative_attention(*f32, mask))
        half_out, half_weights = ref.xl_relative_attention(*args, mask)
        rtol, atol = None, None
        extra_out = 2 * float((half_out.double() - want_out.double()).abs().max())
        extra_w = 2 * float((half_weights.double() - want_weights.double()).abs().max())
    assert_close(weights, want_weights, what=f"the weights of {what}", rtol=rtol, atol=atol, atol_extra=extra_w)
    assert_close(out, want_out, what=f"the output of {what}", rtol=rtol, atol=atol, atol_extra=extra_out)


# -- bad arguments ----------------------------------------------------------------------------

def _attention_call(r_rows=7, bias_shape=(2, 4), mask=None):
    q, k, v = torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    return lambda m: m.xl_relative_attention(q, k, v, torch.zeros(2, r_rows, 4), torch.zeros(*bias_shape),
                                             torch.zeros(2, 4), mask)


BAD = {
    "shift-width": ("rel_shift(x [3, 8], klen=4)", "ValueError",
                    lambda m: m.rel_shift(torch.zeros(3, 8), 4)),
    "shift-1d": ("rel_shift(x [6], klen=3)", "ValueError", lambda m: m.rel_shift(torch.zeros(6), 3)),
    "posemb-2d": ("xl_positional_embedding(pos_seq [2, 3], inv_freq [4])", "ValueError",
                  lambda m: m.xl_positional_embedding(torch.zeros(2, 3), torch.ones(4))),
    "r-lk-rows": ("xl_relative_attention with Lq 3, Lk 4 and r [2, 4, 4] (Lk rows, not Lk + Lq)",
                  "ValueError", _attention_call(r_rows=4)),
    "bias-shape": ("xl_relative_attention with r_w_bias [4] for H 2, d 4", "ValueError",
                   _attention_call(bias_shape=(4,))),
    "float-mask": ("xl_relative_attention with a float mask", "TypeError",
                   _attention_call(mask=torch.ones(3, 4))),
}


@points(1)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_arguments(learner, bad):
    """shapes that do not fit raise ValueError; a mask that is not bool raises TypeError"""
    what, error, make = BAD[bad]
    expect_error(lambda: make(learner), error, what)


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    small = inputs(gen, "cpu", 1, 2, 3, 2, 8)
    got = attend(learner, *small)[1]
    assert_close(got, ref.xl_relative_attention(*small)[1],
                 what="the weights of xl_relative_attention on q [1, 2, 3, 8] (the large input is timed only "
                      "once a small one is right)")
    large = inputs(gen, "cpu", 1, 4, 128, 128, 32)
    assert_fast(learner, "xl_relative_attention on q [1, 4, 128, 32] after a memory of 128",
                attr="xl_relative_attention", args=large)
