"""Hidden cases for the exercise flash (after decoding): online_softmax_update and flash_attention.

online_softmax_update is graded on its own first (random running states, a block whose max
grows, a start with every key of a row masked), so a learner can get the recurrence right
before the tiling. flash_attention is graded against the reference for block sizes that do and
do not divide the lengths (1, 7, 64, L), causal and not, Lq != Lk, and half precision; its lse
against a logsumexp of explicit float64 logits computed here. Where a simple wrong variant
(unscaled logits, lse without log(l), lse in log2, top-left causal) is computed here from the
inputs and matches, the message says so.

Memory: test_memory runs flash_attention once at Lq = Lk = 4096 (one batch, one head, d = 16,
causal, block_size 512) through the peak_memory probe (posgrade.kit.probes), which measures the
most memory torch held during the call beyond what it held before: in the worker for the
learner, and by the same probe here for the reference (an allocation count, the same in either
process; torch on one thread in both). The learner passes within 2x the reference's peak plus
MEMORY_FLOOR (4 MB: index tensors, a copy of q, a few more temporaries of a 1 MB tile). The
reference holds about 3.3 MB (its 512 x 512 tiles); full [4096, 4096] float32 logits are 64 MB,
and a softmax over them another 64 MB. The reference's peak depends only on the shapes, so it
is measured once per grader process.

Tolerances: float32 and float64 use compare.TOLERANCES. Half-precision inputs allow an ulp of
the operands (2^-8 float16, 2^-6 bfloat16, as the attention exercise) on out and on lse, since a
learner may take q·kᵀ in the input dtype before casting.
"""

import math

import pytest
import torch

from posgrade.diagnosis.compare import assert_close, check_tensor, fail
from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors

EXERCISE = "flash"
HALF_TOL = {torch.float16: (2.0**-8, 2.0**-8), torch.bfloat16: (2.0**-6, 2.0**-6)}  # (rtol, atol)
MEMORY_SHAPE = (1, 1, 4096, 16)  # B, H, L, d of the memory case
MEMORY_BLOCK = 512
MEMORY_RATIO = 2.0
MEMORY_FLOOR = 4 * 2**20  # bytes allowed above MEMORY_RATIO x the reference's peak
MB = 2**20
_REFERENCE_PEAK = {}  # device type -> the reference's peak bytes in the memory case (shapes fixed)


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


def host(t):
    return t.detach().to("cpu", torch.float64)


def close(got, want, rtol=1e-4, atol=1e-5):
    """For diagnoses: got and want hold about the same values (any device, any dtype; equal inf)."""
    if not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)):
        return False
    got, want = host(got), host(want)
    return got.shape == want.shape and torch.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def shape_str(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


def qkv(gen, B, H, Lq, Lk, d, dv, device="cpu", dtype=torch.float32):
    return (randn(gen, B, H, Lq, d, device=device, dtype=dtype),
            randn(gen, B, H, Lk, d, device=device, dtype=dtype),
            randn(gen, B, H, Lk, dv, device=device, dtype=dtype))


def flash(impl, q, k, v, **kw):
    shown = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    what = f"flash_attention(q {shape_str(q.shape)}, k {shape_str(k.shape)}, v {shape_str(v.shape)}" \
           f"{', ' + shown if shown else ''})"
    return tensors(impl.flash_attention(q, k, v, **kw), 2, what)


def update(impl, m, l, acc, scores, v_block):
    return tensors(impl.online_softmax_update(m, l, acc, scores, v_block), 3, "online_softmax_update(...)")


def explicit(q, k, v, causal=False, scale=None, top_left=False):
    """Attention written out in float64 here, from the definition: (out, lse, logits)."""
    q, k, v = host(q), host(k), host(v)
    Lq, Lk = q.shape[-2], k.shape[-2]
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = q @ k.transpose(-2, -1) * scale  # [B, H, Lq, Lk]
    if causal:
        allowed = torch.ones(Lq, Lk, dtype=torch.bool).tril(0 if top_left else Lk - Lq)
        logits = logits.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(logits, dim=-1)  # -inf where no key is allowed
    weights = torch.exp(logits - lse[..., None]).nan_to_num(0.0)
    return weights @ v, lse, logits


def block_id(b):
    return "L" if b is None else str(b)


# -- online_softmax_update -------------------------------------------------------------------------

def random_state(gen, lead, Lq, dv, device):
    """A running state after some earlier blocks: m finite, l > 0, acc anything."""
    m = randn(gen, *lead, Lq, device=device) * 2 + 1  # often above this block's max, sometimes below
    l = torch.rand(*lead, Lq, generator=gen).to(device) * 3 + 0.5
    acc = randn(gen, *lead, Lq, dv, device=device)
    return m, l, acc


@points(2)
@pytest.mark.parametrize("lead", [(2, 3), (4,)], ids=["BxH", "flat"])
def test_update_values(learner, ref, device, gen, lead):
    """online_softmax_update folds one block into (m, l, acc) as the recurrence says"""
    Lq, Bk, dv = 5, 4, 6
    m, l, acc = random_state(gen, lead, Lq, dv, device)
    scores = randn(gen, *lead, Lq, Bk, device=device) * 2
    v_block = randn(gen, *lead, Bk, dv, device=device)
    got = update(learner, m, l, acc, scores, v_block)
    want = update(ref, m, l, acc, scores, v_block)
    if got[0].shape == want[0].shape:
        block_max = host(scores).amax(-1)
        if close(got[0], block_max) and not close(want[0], block_max):
            fail("m_new is the max of this block's scores alone: the running max is max(m, rowmax(scores)), "
                 "so a row whose earlier keys scored higher keeps its old max")
    for name, g, w in zip(("m_new", "l_new", "acc_new"), got, want):
        assert_close(g, w, what=f"{name} with m, l {shape_str(m.shape)}, acc {shape_str(acc.shape)}, "
                                f"scores {shape_str(scores.shape)}")


@points(2)
def test_update_rescaling(learner, ref, device, gen):
    """when the max grows, the old l and acc are multiplied by exp(m_old - m_new)"""
    Lq, Bk, dv = 4, 3, 5
    m = torch.zeros(2, Lq, device=device)
    l = torch.full((2, Lq), 2.0, device=device)
    acc = randn(gen, 2, Lq, dv, device=device)
    scores = randn(gen, 2, Lq, Bk, device=device) * 0.5 + 3  # every row's max grows by about 3
    v_block = randn(gen, 2, Bk, dv, device=device)
    m_new, l_new, acc_new = update(learner, m, l, acc, scores, v_block)
    # the recurrence, in float64 here
    s, vb = host(scores), host(v_block)
    want_m = s.amax(-1)
    p = torch.exp(s - want_m[..., None])
    alpha = torch.exp(host(m) - want_m)
    want_l = alpha * host(l) + p.sum(-1)
    want_acc = alpha[..., None] * host(acc) + p @ vb
    if close(l_new, host(l) + p.sum(-1)) and not close(l_new, want_l):
        fail("l_new = l + rowsum(p): the old sum l was not rescaled. It was summed relative to the old max, "
             "so when the max grows it must shrink by exp(m - m_new): l_new = exp(m - m_new) * l + rowsum(p)")
    if close(acc_new, host(acc) + p @ vb) and not close(acc_new, want_acc):
        fail("acc_new = acc + p @ v_block: the old accumulator was not rescaled. It was summed relative to the "
             "old max, so multiply it by exp(m - m_new) first: acc_new = exp(m - m_new)[..., None] * acc + p @ v")
    want = update(ref, m, l, acc, scores, v_block)
    for name, g, w in zip(("m_new", "l_new", "acc_new"), (m_new, l_new, acc_new), want):
        assert_close(g, w, what=f"{name} after a block whose max is about 3 above the old max 0")


@points(2)
def test_update_fully_masked_first_block(learner, ref, device, gen):
    """from the start state, a row whose keys are all masked stays at m = -inf, l = 0, acc = 0, never NaN"""
    Lq, Bk, dv = 4, 5, 3
    m = torch.full((2, Lq), float("-inf"), device=device)  # the start: nothing seen yet
    l = torch.zeros(2, Lq, device=device)
    acc = torch.zeros(2, Lq, dv, device=device)
    scores = randn(gen, 2, Lq, Bk, device=device)
    scores[0, 1] = float("-inf")  # every key of these rows is masked (a causal tile above the diagonal)
    scores[1, 3] = float("-inf")
    scores[1, 0, 2:] = float("-inf")  # some keys of this row are masked
    v_block = randn(gen, 2, Bk, dv, device=device)
    first = update(learner, m, l, acc, scores, v_block)
    for name, t in zip(("m_new", "l_new", "acc_new"), first):
        if torch.isnan(t).any():
            fail(f"{name} has NaN for a row whose keys were all masked so far: m_new stays -inf and "
                 "exp(-inf - (-inf)) is NaN. Use 0 in place of an m_new of -inf in the exponents "
                 "(torch.where(torch.isneginf(m_new), 0.0, m_new)), so the row keeps l = 0 and acc = 0")
    want = update(ref, m, l, acc, scores, v_block)
    for name, g, w in zip(("m_new", "l_new", "acc_new"), first, want):
        assert_close(g, w, what=f"{name} from the start state with two rows fully masked")
    # the next block, from the learner's own state, allows every key
    scores2 = randn(gen, 2, Lq, Bk, device=device)
    second = update(learner, *first, scores2, v_block)
    want2 = update(ref, *want, scores2, v_block)
    for name, g, w in zip(("m_new", "l_new", "acc_new"), second, want2):
        assert_close(g, w, what=f"{name} of the next block, after a first block with rows fully masked")


@points(2)
def test_normalised_once_at_the_end(learner, ref, device, gen):
    """acc stays unnormalised through the blocks; out = acc / l once, at the end"""
    Lq, dv = 3, 4
    state = (torch.full((1, Lq), float("-inf"), device=device), torch.zeros(1, Lq, device=device),
             torch.zeros(1, Lq, dv, device=device))
    blocks = [(randn(gen, 1, Lq, 4, device=device) * 2, randn(gen, 1, 4, dv, device=device)) for _ in range(3)]
    for scores, v_block in blocks:
        state = update(learner, *state, scores, v_block)
    m, l, acc = (host(t) for t in state)
    s = torch.cat([host(b[0]) for b in blocks], -1)  # [1, Lq, 12]
    v = torch.cat([host(b[1]) for b in blocks], -2)  # [1, 12, dv]
    weights = torch.softmax(s, -1)
    out = weights @ v
    want_acc = torch.exp(s - s.amax(-1, keepdim=True)) @ v  # relative to the final max
    if acc.shape == want_acc.shape and close(acc, out) and not close(acc, want_acc):
        fail("after three blocks acc holds softmax · v already: it was divided by l on the way. acc must stay "
             "the unnormalised Σ exp(logit - m) · v; flash_attention divides by l once, after the last block")
    assert_close(state[2], want_acc.to(state[2].device, state[2].dtype),
                 what="acc after three blocks (Σ exp(s - m) · v)")
    assert_close(state[1], torch.exp(s - s.amax(-1, keepdim=True)).sum(-1).to(state[1].device, state[1].dtype),
                 what="l after three blocks (Σ exp(s - m))")
    # and flash_attention, over many key blocks
    q, k, v = qkv(gen, 1, 2, 6, 20, 8, 8, device=device)
    got, _ = flash(learner, q, k, v, block_size=3)
    want, _ = flash(ref, q, k, v, block_size=3)
    assert_close(got, want, what="flash_attention's output over 7 key blocks of 3")


# -- flash_attention -------------------------------------------------------------------------------

@points(1)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("block", [1, 7, 64, None], ids=block_id)
def test_values(learner, ref, device, gen, block, causal):
    """flash_attention equals softmax attention for block sizes that do and do not divide L"""
    q, k, v = qkv(gen, 2, 3, 11, 11, 8, 8, device=device)
    block_size = 11 if block is None else block
    out, lse = flash(learner, q, k, v, causal=causal, block_size=block_size)
    want_out, want_lse = flash(ref, q, k, v, causal=causal, block_size=block_size)
    what = f"with L = 11, block_size={block_size}, causal={causal}"
    assert_close(out, want_out, what=f"the output {what}")
    assert_close(lse, want_lse, what=f"lse {what}")


@points(1)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(5, 19), (19, 5), (1, 12)], ids=lambda s: f"{s[0]}q{s[1]}k")
def test_lq_ne_lk(learner, ref, device, gen, lengths, causal):
    """queries and keys of different lengths, and v of another width than q"""
    Lq, Lk = lengths
    q, k, v = qkv(gen, 1, 2, Lq, Lk, 8, 6, device=device)
    out, lse = flash(learner, q, k, v, causal=causal, block_size=4)
    want_out, want_lse = flash(ref, q, k, v, causal=causal, block_size=4)
    what = f"with Lq = {Lq}, Lk = {Lk}, block_size=4, causal={causal}"
    assert_close(out, want_out, what=f"the output {what}")
    assert_close(lse, want_lse, what=f"lse {what}")


@points(2)
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_lse(learner, device, gen, causal):
    """lse is the natural logsumexp of each query's scaled logits (m + log l)"""
    q, k, v = qkv(gen, 2, 2, 6, 11, 8, 8, device=device)
    _, lse = flash(learner, q, k, v, causal=causal, block_size=5)
    _, want, logits = explicit(q, k, v, causal=causal)
    if lse.shape == want.shape:
        row_max = logits.amax(-1)
        if close(lse, row_max) and not close(lse, want):
            fail("lse equals each query's largest scaled logit, m alone: the logsumexp is m + log(l), "
                 "the max plus the log of the running sum")
        if close(lse, want / math.log(2)) and not close(lse, want):
            fail("lse is the logsumexp in base 2 (log2 Σ exp2(...), as some kernels keep it internally): "
                 "return the natural one, m + log(l) with torch.log")
    assert_close(lse, want.to(lse.device, torch.float32),
                 what=f"lse (causal={causal}) against torch.logsumexp of the scaled logits")


@points(2)
def test_no_allowed_key(learner, ref, device, gen):
    """a query with no allowed key (causal, Lq > Lk) gets out = 0 and lse = -inf, never NaN"""
    q, k, v = qkv(gen, 2, 2, 9, 4, 8, 8, device=device)  # the first 5 queries sit before every key
    out, lse = flash(learner, q, k, v, causal=True, block_size=3)
    for name, t in (("the output", out), ("lse", lse)):
        if torch.isnan(t).any():
            fail(f"{name} has NaN for the queries that may see no key (causal, Lq = 9 > Lk = 4): "
                 "m stays -inf for them and exp(-inf - (-inf)) is NaN; use 0 in place of an m of -inf in "
                 "the exponents, then give rows with l = 0 the output 0 and the lse -inf")
    if lse.shape == (2, 2, 9) and not torch.isneginf(lse[..., :5]).all():
        fail(f"lse of a query with no allowed key is {float(lse[0, 0, 0]):.4g}, expected -inf "
             "(the log of an empty sum)")
    want_out, want_lse = flash(ref, q, k, v, causal=True, block_size=3)
    assert_close(out, want_out, what="the output with 5 queries that see no key")
    assert_close(lse, want_lse, what="lse with 5 queries that see no key")


@points(2)
@pytest.mark.parametrize("block", [3, 64], ids=["block3", "block64"])
def test_causal_bottom_right(learner, ref, device, gen, block):
    """causal attention is aligned bottom-right: query i sees keys j <= Lk - Lq + i"""
    q, k, v = qkv(gen, 1, 2, 4, 10, 8, 8, device=device)
    out, lse = flash(learner, q, k, v, causal=True, block_size=block)
    want_out, want_lse = flash(ref, q, k, v, causal=True, block_size=block)
    top_left, _, _ = explicit(q, k, v, causal=True, top_left=True)
    if out.shape == want_out.shape and close(out, top_left) and not close(out, want_out):
        fail("the causal mask is aligned top-left (query i sees keys j <= i, as SDPA's is_causal): with a KV "
             "cache the 4 queries are the last 4 of 10 positions, so query i sits at Lk - Lq + i = 6 + i and "
             "sees keys j <= 6 + i")
    assert_close(out, want_out, what=f"the output with Lq = 4, Lk = 10, causal, block_size={block}")
    assert_close(lse, want_lse, what=f"lse with Lq = 4, Lk = 10, causal, block_size={block}")


@points(1)
def test_scale(learner, ref, device, gen):
    """the logits are divided by sqrt(d), d = q.shape[-1] (not left unscaled, not divided by d)"""
    d = 16
    q, k, v = qkv(gen, 1, 2, 5, 7, d, 4, device=device)
    out, lse = flash(learner, q, k, v, block_size=4)
    want_out, want_lse = flash(ref, q, k, v, block_size=4)
    if out.shape == want_out.shape:
        for mistake, scale in (("not scaled at all", 1.0), ("divided by d instead of sqrt(d)", 1 / d)):
            alt, alt_lse, _ = explicit(q, k, v, scale=scale)
            if close(out, alt) and not close(out, want_out):
                fail(f"the output is that of logits {mistake}: scale q·kᵀ by 1/sqrt(d) with d = q.shape[-1] = "
                     f"{d}, the head width")
    assert_close(out, want_out, what="the output with d = 16")
    assert_close(lse, want_lse, what="lse with d = 16")


@points(1)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=dtype_id)
def test_dtype(learner, ref, device, gen, dtype):
    """half-precision and float64 inputs give out in that dtype and lse in float32"""
    q, k, v = qkv(gen, 2, 2, 9, 12, 16, 16, device=device, dtype=dtype)
    out, lse = flash(learner, q, k, v, causal=True, block_size=5)
    want_out, want_lse = flash(ref, q, k, v, causal=True, block_size=5)
    rtol, atol = HALF_TOL.get(dtype, (None, None))
    assert_close(out, want_out, what=f"the output for {dtype_id(dtype)} inputs", rtol=rtol, atol=atol)
    assert_close(lse, want_lse, what=f"lse for {dtype_id(dtype)} inputs (float32 whatever the input)",
                 rtol=rtol, atol=atol)


@points(2)
def test_accumulates_in_float32(learner, ref, device, gen):
    """bfloat16 inputs are accumulated in float32: small weights after large ones are not lost"""
    Lk = 64
    # logits exactly [0, 0, -6, -6, ...] (d = 4, so the scale is 1/2): keys 0 and 1 weigh 1 each, every later
    # key e^-6 = 0.0025, less than half a bfloat16 ulp of 2 (2^-7)
    q = torch.zeros(1, 1, 2, 4, device=device, dtype=torch.bfloat16)
    q[..., 0] = 2.0
    k = randn(gen, 1, 1, Lk, 4, device=device, dtype=torch.bfloat16)
    k[..., 0] = -6.0
    k[:, :, :2, 0] = 0.0
    v = randn(gen, 1, 1, Lk, 4, device=device, dtype=torch.bfloat16)
    out, lse = flash(learner, q, k, v, block_size=1)
    true_lse = math.log(2 + (Lk - 2) * math.exp(-6))
    if lse.shape == (1, 1, 2) and close(lse, torch.full((1, 1, 2), math.log(2)), atol=0.01):
        fail(f"with logits [0, 0, -6, -6, ...] over {Lk} keys, lse is {float(lse.flatten()[0]):.4f} = log(2), "
             f"expected log(2 + {Lk - 2}·e^-6) = {true_lse:.4f}: the running sum l was kept in bfloat16, where "
             "2 + e^-6 = 2, so every key after the second was lost. Keep m, l and acc in float32 and cast only "
             "the output back to the input dtype")
    want_out, want_lse = flash(ref, q, k, v, block_size=1)
    rtol, atol = HALF_TOL[torch.bfloat16]
    assert_close(out, want_out, what=f"the output for bfloat16 inputs over {Lk} keys, block_size=1",
                 rtol=rtol, atol=atol)
    assert_close(lse, want_lse, what=f"lse for bfloat16 inputs over {Lk} keys, block_size=1", rtol=rtol, atol=atol)


@points(1)
@pytest.mark.parametrize("bad", ["block_size0", "q3d", "kv_length", "qk_width"])
def test_errors(learner, gen, bad):
    """block_size < 1, non-4-D inputs and mismatched shapes raise ValueError"""
    q, k, v = qkv(gen, 1, 2, 4, 6, 8, 8)
    kw = {"block_size": 4}
    if bad == "block_size0":
        kw["block_size"], what = 0, "flash_attention(..., block_size=0)"
    elif bad == "q3d":
        q, what = q[0], "flash_attention with a 3-D q"
    elif bad == "kv_length":
        v, what = v[:, :, :5], "flash_attention with k of 6 keys and v of 5"
    else:
        k, what = k[..., :6], "flash_attention with q of width 8 and k of width 6"
    expect_error(lambda: learner.flash_attention(q, k, v, **kw), "ValueError", what)


@points(1)
def test_torch_attention_not_used(learner, gen):
    """the attention is your own: torch's scaled_dot_product_attention (and its flash kernel) is not called"""
    q, k, v = qkv(gen, 1, 2, 5, 7, 8, 8)
    state = (torch.full((1, 5), float("-inf")), torch.zeros(1, 5), torch.zeros(1, 5, 8))
    steps = [{"call": "flash_attention", "args": [q, k, v], "kwargs": {"block_size": 4}},
             {"call": "flash_attention", "args": [q, k, v], "kwargs": {"causal": True, "block_size": 3}},
             {"call": "online_softmax_update", "args": [*state, randn(gen, 1, 5, 4), randn(gen, 1, 4, 8)]}]
    found = learner.probe("torch_ops", steps=steps, cls="flash_attention or online_softmax_update")["found"]
    if found:
        names = sorted(found, key=lambda name: (name.startswith("autograd"), name))
        used = "; ".join(f"{name} (in {found[name]})" for name in names[:4])
        fail(f"your code calls torch's own attention: {used}. This exercise is to write the tiled attention "
             "yourself: per tile, scores = q_blk·k_blkᵀ / sqrt(d), then online_softmax_update")


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    small = qkv(gen, 1, 1, 9, 9, 8, 8)
    got, _ = flash(learner, *small, causal=True, block_size=4)
    want, _ = flash(ref, *small, causal=True, block_size=4)
    assert_close(got, want, what="flash_attention on [1, 1, 9, 8] (the large input is timed only once a small "
                                 "one is right)")
    q, k, v = qkv(gen, 1, 2, 512, 512, 32, 32)
    assert_fast(learner, "flash_attention on [1, 2, 512, 32] (causal, block_size=128)", attr="flash_attention",
                args=(q, k, v), kwargs={"causal": True, "block_size": 128})


def reference_peak(ref, device, target):
    """The reference's peak bytes in the memory case, measured once per device type (it depends
    only on the shapes, which are fixed)."""
    key = torch.device(device).type
    if key not in _REFERENCE_PEAK:
        _REFERENCE_PEAK[key] = ref.probe("peak_memory", **target)["peak_bytes"]
    return _REFERENCE_PEAK[key]


@points(8)
def test_memory(learner, ref, device, gen):
    """at 4096 tokens the peak memory stays within 2x the reference's: no [Lq, Lk] logits"""
    small = qkv(gen, 1, 2, 40, 40, 8, 8, device=device)
    got, _ = flash(learner, *small, causal=True, block_size=16)
    want, _ = flash(ref, *small, causal=True, block_size=16)
    assert_close(got, want, what="flash_attention on [1, 2, 40, 8] (the memory at 4096 tokens is measured "
                                 "only once a small input is right)")
    B, H, L, d = MEMORY_SHAPE
    q, k, v = (randn(gen, B, H, L, d) for _ in range(3))  # the probe moves them to the device
    target = {"attr": "flash_attention", "args": [q, k, v], "kwargs": {"causal": True, "block_size": MEMORY_BLOCK},
              "device": device}
    run = learner.probe("peak_memory", cls="flash_attention", **target)
    if not isinstance(run, dict) or "peak_bytes" not in run:
        fail("flash_attention could not be measured at 4096 tokens")
    out, lse = tensors(run["value"], 2, f"flash_attention at {L} tokens")
    # a few query rows, from the definition here (cheap: [rows, 4096] logits)
    rows = torch.tensor([0, 1, MEMORY_BLOCK - 1, MEMORY_BLOCK, L // 2 + 3, L - 1])
    visible = torch.arange(L)[None, :] <= rows[:, None]  # causal, Lq = Lk: query i sees keys j <= i
    logits = host(q[:, :, rows]) @ host(k).transpose(-2, -1) / math.sqrt(d)
    logits = logits.masked_fill(~visible, float("-inf"))
    want_lse = torch.logsumexp(logits, -1)
    want_rows = torch.softmax(logits, -1) @ host(v)
    if out.shape != (B, H, L, d) or lse.shape != (B, H, L):
        fail(f"flash_attention at {L} tokens returned out {shape_str(out.shape)} and lse {shape_str(lse.shape)}, "
             f"expected {shape_str((B, H, L, d))} and {shape_str((B, H, L))}")
    picked = rows.to(out.device)
    assert_close(out[:, :, picked], want_rows.to(out.device, torch.float32),
                 what=f"rows {rows.tolist()} of the output at {L} tokens")
    assert_close(lse[:, :, picked], want_lse.to(lse.device, torch.float32),
                 what=f"lse of rows {rows.tolist()} at {L} tokens")
    mine = run["peak_bytes"]
    theirs = reference_peak(ref, device, target)
    allowed = MEMORY_RATIO * theirs + MEMORY_FLOOR
    if mine > allowed:
        full = B * H * L * L * 4  # one float32 [B, H, Lq, Lk] tensor
        if mine >= full:
            why = (f"it builds the full [Lq, Lk] score matrix (one float32 [{B}, {H}, {L}, {L}] tensor is "
                   f"{full / MB:.0f} MB, and a softmax over it makes another). Walk over the keys in blocks "
                   f"of block_size and fold each tile of scores into (m, l, acc) with the online softmax, so "
                   f"only one [block_size, block_size] tile exists at a time")
        elif mine >= L * L:
            why = (f"it holds something as large as a [{L}, {L}] bool mask ({L * L / MB:.0f} MB) or float32 "
                   f"scores of every query against a block of keys ([{L}, {MEMORY_BLOCK}] is "
                   f"{L * MEMORY_BLOCK * 4 / MB:.0f} MB). Take the queries in blocks of block_size too, and build "
                   f"each tile's causal mask from its own positions")
        else:
            why = ("it keeps more or larger temporaries than one [block_size, block_size] tile of scores and its "
                   "exp: take both queries and keys in blocks of block_size and let each tile's tensors go "
                   "before the next")
        fail(f"your flash_attention used {mine / MB:.1f} MB at {L} tokens, {mine / max(theirs, 1):.1f}x the "
             f"reference's {theirs / MB:.1f} MB (the limit is {MEMORY_RATIO:g}x + {MEMORY_FLOOR / MB:.0f} MB, "
             f"with causal=True, block_size={MEMORY_BLOCK}): {why}")
