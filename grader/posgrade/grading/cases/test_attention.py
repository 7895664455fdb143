"""Hidden cases for the attention exercise.

scaled_dot_product_attention and causal_mask are graded on random inputs against the
reference, and by properties (rows of weights sum to 1 over the keys, a KV-cache chunk gives
the last rows of the full causal attention). MultiHeadAttention is graded with random
weights under the reference's state_dict keys (fixed by the contract) loaded into both
modules, for every position scheme; it composes the learner's own exercises 1-4 and 6.

The alibi exercise comes after this one, so attention must reach full marks without it: while
the learner's alibi_bias still raises NotImplementedError, every case of position="alibi" and
every case that needs alibi_bias is skipped with the reason "needs exercise N (alibi)", N its number in `posgrade list` (not
graded, so not counted against attention), and the cases that use "alibi" only as one position
among others leave it out. Once alibi is done, the next check of attention grades them all.

Tolerance: float32 and float64 use compare.TOLERANCES. Half precision: the docstring says
where to round (q·kᵀ in the input dtype, softmax in float32, weights cast back before ·v),
but a learner who rounds at other steps (all in float32 and one cast at the end, or the
softmax in half) is as right; over 200 random inputs such variants stay within 0.3 (float16)
and 0.7 (bfloat16) of HALF_TOL, about two ulps of |out| for bfloat16 and four for float16;
after MultiHeadAttention's out_proj, which sums D such values, they reach 1.06, so module
cases allow twice HALF_TOL.
A float64 module is held to float32's tolerance, since the spec lets the encodings it
composes work in float32.
"""

import math
import weakref

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors
from posgrade.diagnosis.compare import assert_close, check_tensor, fail
from posgrade.grading.learner import Learner, LearnerError
from posgrade.kit import catalog

EXERCISE = "attention"
POSITIONS = ("none", "sinusoidal", "learned", "relative", "rope", "alibi")
MAX_LEN = 32  # max_len of the modules: positions for "sinusoidal" and "learned"
MAX_DISTANCE = 3  # max_distance for "relative": small, so clipping happens in L = 7
HALF_TOL = {torch.float16: (2.0**-8, 2.0**-8), torch.bfloat16: (2.0**-6, 2.0**-6)}  # (rtol, atol)
DTYPES = [torch.float64, torch.float16, torch.bfloat16]


ALIBI_CASES = {"test_mha_alibi_bias_unscaled"}  # cases about alibi_bias itself, whatever their parameters
_ALIBI_DONE = weakref.WeakKeyDictionary()  # worker -> whether the learner's alibi_bias is written


def alibi_done(learner):
    """The learner's alibi_bias (the alibi exercise) no longer raises NotImplementedError. Any other
    outcome counts as done: the cases then show what it does."""
    worker = learner._worker
    if worker not in _ALIBI_DONE:
        try:
            Learner(worker, "alibi").alibi_bias(2, 2, 2)
            _ALIBI_DONE[worker] = True
        except LearnerError as err:
            _ALIBI_DONE[worker] = err.kind != "not-implemented"
    return _ALIBI_DONE[worker]


@pytest.fixture(autouse=True)
def _needs_alibi(request, learner):
    """Skip (at setup, so the case is not graded) a case that needs alibi while it is not done."""
    spec = getattr(request.node, "callspec", None)
    wants = request.node.originalname in ALIBI_CASES or (spec is not None and spec.params.get("position") == "alibi")
    if wants and not alibi_done(learner):
        pytest.skip(f"needs exercise {catalog.names().index('alibi')} (alibi)")


def positions_ready(learner, positions):
    """positions, without "alibi" while the learner's alibi is not done."""
    return [p for p in positions if p != "alibi" or alibi_done(learner)]


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


def tol(dtype):
    rtol, atol = HALF_TOL.get(dtype, (None, None))
    return {"rtol": rtol, "atol": atol}


def host(t):
    return t.detach().to("cpu", torch.float64)


def close(got, want, rtol=1e-4, atol=1e-5):
    """For diagnoses: got and want (tensors on any device, of any dtype) hold about the same values."""
    got, want = host(got), host(want)
    return got.shape == want.shape and torch.allclose(got, want, rtol=rtol, atol=atol)


def max_diff(got, want):
    return float((host(got) - host(want)).abs().max())


def sdpa(impl, q, k, v, what="scaled_dot_product_attention(q, k, v)", **kw):
    return tensors(impl.scaled_dot_product_attention(q, k, v, **kw), 2, what)


def qkv(gen, B, H, Lq, Lk, d, dv, device="cpu", dtype=torch.float32):
    return (randn(gen, B, H, Lq, d, device=device, dtype=dtype),
            randn(gen, B, H, Lk, d, device=device, dtype=dtype),
            randn(gen, B, H, Lk, dv, device=device, dtype=dtype))


def random_mask(gen, *shape, device="cpu", keep=0.5):
    """A random bool mask (True = may attend) in which every row keeps at least one key."""
    mask = torch.rand(*shape, generator=gen) < keep
    one = torch.randint(shape[-1], (*shape[:-1], 1), generator=gen)
    return mask.scatter(-1, one, True).to(device)


def shape_str(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


# -- scaled_dot_product_attention --------------------------------------------------------------

# (B, H, Lq, Lk, d, dv): square, more keys than queries with d != dv, one query, one head
SHAPES = [(2, 3, 5, 5, 8, 8), (1, 4, 7, 13, 16, 12), (3, 2, 1, 9, 32, 32), (2, 1, 6, 6, 4, 5)]


@points(3)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_sdpa_values(learner, ref, device, gen, shape):
    """scaled_dot_product_attention returns softmax(q·kᵀ/sqrt(d))·v and the weights"""
    q, k, v = qkv(gen, *shape, device=device)
    out, weights = sdpa(learner, q, k, v)
    want_out, want_weights = sdpa(ref, q, k, v)
    what = f"with q {shape_str(q.shape)}, k {shape_str(k.shape)}, v {shape_str(v.shape)}"
    assert_close(weights, want_weights, what=f"the weights {what}")
    assert_close(out, want_out, what=f"the output {what}")


@points(2)
def test_logits_scaled_by_sqrt_d(learner, ref, gen):
    """the logits are divided by sqrt(d), d = q.shape[-1] (not left unscaled, not divided by d)"""
    d = 16
    q, k, v = qkv(gen, 2, 2, 6, 6, d, 5)
    _, weights = sdpa(learner, q, k, v)
    _, want = sdpa(ref, q, k, v)
    if weights.shape == want.shape:
        # the same weights with another scale: fold the factor into q and ask the reference
        others = {"not scaled at all": math.sqrt(d), "divided by d instead of sqrt(d)": 1 / math.sqrt(d),
                  "scaled by v's width (dv) instead of q's": math.sqrt(d / 5)}
        for mistake, factor in others.items():
            _, alt = sdpa(ref, q * factor, k, v)
            if close(weights, alt):
                fail(f"the weights are those of logits {mistake}: divide q·kᵀ by sqrt(d) with d = "
                     f"q.shape[-1] = {d}, the head width, before the softmax")
    assert_close(weights, want, what="the weights with d = 16")


@points(2)
def test_softmax_over_keys(learner, ref, gen):
    """the softmax runs over the keys: each query's weights sum to 1"""
    q, k, v = qkv(gen, 2, 2, 4, 9, 8, 8)
    _, weights = sdpa(learner, q, k, v)
    _, want = sdpa(ref, q, k, v)
    if weights.shape == want.shape:
        rows = host(weights).sum(-1)
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-4):
            cols = host(weights).sum(-2)
            if torch.allclose(cols, torch.ones_like(cols), atol=1e-4):
                fail("each key's weights sum to 1 over the queries: the softmax ran over the queries "
                     "(dim=-2); a query distributes its attention over the keys, so use dim=-1")
            fail(f"the weights of a query sum to {float(rows.flatten()[0]):.4g}, not 1: they must be a "
                 "softmax over the keys (the last dim)")
    assert_close(weights, want, what="the weights with 4 queries and 9 keys")


@points(2)
def test_mask_true_means_attend(learner, ref, device, gen):
    """a bool mask means True = may attend (not nn.MultiheadAttention's True = ignore)"""
    q, k, v = qkv(gen, 2, 2, 5, 7, 8, 8, device=device)
    mask = random_mask(gen, 5, 7, device=device)
    _, weights = sdpa(learner, q, k, v, mask=mask)
    _, want = sdpa(ref, q, k, v, mask=mask)
    if weights.shape == want.shape:
        w = weights.detach().double().cpu()
        m = mask.cpu().expand(w.shape)
        if (w[m] == 0).all() and (w[~m] > 0).any():
            fail("the keys where mask is True got zero weight and the others got all of it: here True "
                 "means the query MAY attend the key (as in F.scaled_dot_product_attention), the "
                 "opposite of nn.MultiheadAttention's masks")
        if (w[~m] != 0).any():
            fail("keys where mask is False got non-zero weight: masked keys must get exactly 0 "
                 "(fill their logits with -inf before the softmax)")
    assert_close(weights, want, what="the weights with a [5, 7] mask")


@points(2)
def test_mask_before_softmax(learner, ref, device, gen):
    """masking happens before the softmax, so the allowed keys' weights sum to 1"""
    q, k, v = qkv(gen, 2, 3, 6, 6, 8, 8, device=device)
    mask = random_mask(gen, 2, 1, 6, 6, device=device)
    out, weights = sdpa(learner, q, k, v, mask=mask)
    want_out, want = sdpa(ref, q, k, v, mask=mask)
    if weights.shape == want.shape:
        rows = weights.detach().double().cpu().sum(-1)
        low = rows < 1 - 1e-3
        if low.any():
            fail(f"with a mask, a query's weights sum to {float(rows[low][0]):.4g} instead of 1: the masked "
                 "keys were removed after the softmax; fill their logits with -inf before it, so the "
                 "allowed keys share all of the attention")
    assert_close(weights, want, what="the weights with a [2, 1, 6, 6] mask")
    assert_close(out, want_out, what="the output with a [2, 1, 6, 6] mask")


# (mask shape, bias shape) against q [2, 3, 4, d], k [2, 3, 6, d]; None = not given
BROADCASTS = [
    ((4, 6), None), ((2, 1, 4, 6), None), ((2, 1, 1, 6), None), ((3, 1, 6), None),
    (None, (3, 4, 6)), (None, (1, 3, 4, 6)), (None, (6,)), (None, (2, 3, 4, 6)),
    ((2, 1, 1, 6), (3, 4, 6)), ((4, 6), (2, 1, 4, 6)),
]


def bc_id(pair):
    mask, bias = pair
    return "-".join(f"{n}{'x'.join(map(str, s))}" for n, s in (("mask", mask), ("bias", bias)) if s)


@points(1)
@pytest.mark.parametrize("shapes", BROADCASTS, ids=bc_id)
def test_mask_and_bias_broadcast(learner, ref, device, gen, shapes):
    """masks and additive biases of every broadcastable shape are applied"""
    mask_shape, bias_shape = shapes
    q, k, v = qkv(gen, 2, 3, 4, 6, 8, 5, device=device)
    kw = {}
    if mask_shape:
        kw["mask"] = random_mask(gen, *mask_shape, device=device)
    if bias_shape:
        kw["bias"] = 2 * randn(gen, *bias_shape, device=device)
    out, weights = sdpa(learner, q, k, v, **kw)
    want_out, want = sdpa(ref, q, k, v, **kw)
    given = " and ".join(f"a {shape_str(s)} {n}" for n, s in (("mask", mask_shape), ("bias", bias_shape)) if s)
    assert_close(weights, want, what=f"the weights with {given}")
    assert_close(out, want_out, what=f"the output with {given}")


@points(2)
@pytest.mark.parametrize("via", ["mask", "bias"])
def test_fully_masked_row_gives_zeros(learner, ref, device, gen, via):
    """a query with no allowed key gets zero weights and a zero output, not NaN"""
    q, k, v = qkv(gen, 2, 2, 4, 5, 8, 8, device=device)
    mask = random_mask(gen, 2, 1, 4, 5, device=device)
    mask[0, :, 1] = False  # query 1 of batch 0 may attend no key
    mask[1, :, 3] = False
    if via == "mask":
        kw = {"mask": mask}
    else:
        kw = {"bias": torch.zeros(mask.shape, device=device).masked_fill(~mask, float("-inf"))}
    out, weights = sdpa(learner, q, k, v, **kw)
    want_out, want = sdpa(ref, q, k, v, **kw)
    rows = "every key masked" if via == "mask" else "a bias of -inf on every key"
    for name, got in (("weights", weights), ("output", out)):
        if torch.isnan(got).any():
            fail(f"the {name} of a query with {rows} are NaN: softmax over a row of -inf logits is "
                 "0/0; give such rows zero weights (and so a zero output), as torch 2.13's SDPA does")
    if weights.shape == want.shape:
        dead = weights[0, :, 1].detach().double().cpu()
        if torch.allclose(dead, torch.full_like(dead, 1 / 5), atol=1e-3):
            fail(f"a query with {rows} got uniform weights 1/5 (a finite fill such as -1e9 or "
                 "finfo.min does that): with no allowed key its weights and output must be zero")
    assert_close(weights, want, what=f"the weights with rows of {rows}")
    assert_close(out, want_out, what=f"the output with rows of {rows}")


@points(2)
@pytest.mark.parametrize("layout", ["unbatched", "three_leading_dims", "shared_kv"])
def test_sdpa_leading_dims(learner, ref, device, gen, layout):
    """any number of leading dims works, and k, v broadcast against q"""
    if layout == "unbatched":
        q, k, v = (randn(gen, *s, device=device) for s in ((5, 8), (7, 8), (7, 3)))
    elif layout == "three_leading_dims":
        q, k, v = (randn(gen, *s, device=device) for s in ((2, 2, 3, 4, 8), (2, 2, 3, 6, 8), (2, 2, 3, 6, 8)))
    else:  # one k, v for every batch and head (as in multi-query attention)
        q, k, v = (randn(gen, *s, device=device) for s in ((2, 3, 4, 8), (1, 1, 6, 8), (1, 1, 6, 4)))
    what = f"q {shape_str(q.shape)}, k {shape_str(k.shape)}, v {shape_str(v.shape)}"
    out, weights = sdpa(learner, q, k, v, what=f"scaled_dot_product_attention with {what}")
    want_out, want = sdpa(ref, q, k, v)
    assert_close(weights, want, what=f"the weights with {what}")
    assert_close(out, want_out, what=f"the output with {what}")


@points(2)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_sdpa_dtype(learner, ref, device, gen, dtype):
    """q, k, v in float64, float16 or bfloat16 give results in that dtype"""
    q, k, v = qkv(gen, 2, 2, 5, 7, 16, 16, device=device, dtype=dtype)
    mask = random_mask(gen, 5, 7, device=device)
    bias = randn(gen, 2, 5, 7, device=device)
    out, weights = sdpa(learner, q, k, v, mask=mask, bias=bias)
    want_out, want = sdpa(ref, q, k, v, mask=mask, bias=bias)
    assert_close(weights, want, what=f"the weights for {dtype_id(dtype)} inputs", **tol(dtype))
    assert_close(out, want_out, what=f"the output for {dtype_id(dtype)} inputs", **tol(dtype))


@points(2)
def test_sdpa_dropout(learner, ref, gen):
    """dropout_p > 0 zeroes weights at rate p and scales the rest by 1/(1 - p)"""
    p = 0.5
    q, k, v = qkv(gen, 4, 4, 16, 16, 8, 8)
    out, weights = sdpa(learner, q, k, v, dropout_p=p, what=f"scaled_dot_product_attention(..., dropout_p={p})")
    _, plain = sdpa(ref, q, k, v)
    if weights.shape != plain.shape:
        assert_close(weights, plain, what="the weights")
    w, plain = weights.detach().double().cpu(), plain.double()
    kept = w != 0
    rate = 1 - float(kept.double().mean())
    n = w.numel()
    if rate == 0:
        fail(f"with dropout_p={p} no weight was dropped: apply dropout to the weights and return the "
             "weights after dropout (the ones that multiply v)")
    if abs(rate - p) > 6 * (p * (1 - p) / n) ** 0.5:
        fail(f"with dropout_p={p}, {100 * rate:.1f}% of the {n} weights were zeroed, expected about {100 * p:.0f}%")
    scaled = plain[kept] / (1 - p)
    if not torch.allclose(w[kept], scaled, rtol=1e-4, atol=1e-6):
        if torch.allclose(w[kept], plain[kept], rtol=1e-4, atol=1e-6):
            fail(f"the weights kept by dropout are not scaled by 1/(1 - p) = {1 / (1 - p):g}: "
                 "use F.dropout, which scales them, so the expected output does not change")
        fail("the weights kept by dropout are not the softmax weights scaled by 1/(1 - p)")
    assert_close(out, (w @ v.double()).to(out.dtype),
                 what="the output with dropout (it must be the returned weights times v)")


@points(1)
@pytest.mark.parametrize("case", ["float_mask", "dropout_one", "dropout_negative"])
def test_sdpa_bad_arguments(learner, gen, case):
    """a non-bool mask raises TypeError; dropout_p outside [0, 1) raises ValueError"""
    q, k, v = qkv(gen, 1, 1, 3, 3, 4, 4)
    if case == "float_mask":
        expect_error(lambda: learner.scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 3)), "TypeError",
                     "scaled_dot_product_attention with a float mask (pass additive masks as bias)")
    else:
        p = 1.0 if case == "dropout_one" else -0.1
        expect_error(lambda: learner.scaled_dot_product_attention(q, k, v, dropout_p=p), "ValueError",
                     f"scaled_dot_product_attention with dropout_p={p}")


# -- causal_mask ---------------------------------------------------------------------------------

def mask_of(impl, len_q, len_k, **kw):
    out = impl.causal_mask(len_q, len_k, **kw)
    check_tensor(out, f"causal_mask({len_q}, {len_k})")
    return out


@points(2)
@pytest.mark.parametrize("length", [1, 4, 9])
def test_causal_mask_square(learner, ref, length):
    """causal_mask(L, L): query i may attend keys j <= i"""
    got = mask_of(learner, length, length)
    assert_close(got, mask_of(ref, length, length), what=f"causal_mask({length}, {length})")


@points(3)
@pytest.mark.parametrize("len_q,len_k", [(1, 5), (3, 7), (2, 4)])
def test_causal_mask_bottom_right(learner, ref, len_q, len_k):
    """with a KV cache (Lq < Lk) the queries are the last Lq positions: the mask is bottom-right aligned"""
    got = mask_of(learner, len_q, len_k)
    want = mask_of(ref, len_q, len_k)
    top_left = torch.ones(len_q, len_k, dtype=torch.bool).tril()
    if got.shape == want.shape and got.dtype == torch.bool and torch.equal(got.cpu(), top_left):
        fail(f"causal_mask({len_q}, {len_k}) is tril(ones(Lq, Lk)), aligned top-left like SDPA's is_causal: "
             f"with a KV cache the queries are the LAST {len_q} of the {len_k} positions, query i sits at "
             f"len_k - len_q + i and sees keys j <= {len_k - len_q} + i (tril(..., diagonal=Lk - Lq))")
    assert_close(got, want, what=f"causal_mask({len_q}, {len_k})")


@points(1)
def test_causal_mask_more_queries_than_keys(learner, ref):
    """with Lq > Lk the first Lq - Lk queries see no key"""
    assert_close(mask_of(learner, 5, 3), mask_of(ref, 5, 3), what="causal_mask(5, 3)")


@points(1)
def test_causal_mask_device(learner, ref, device):
    """causal_mask(..., device=) creates the mask there"""
    got = mask_of(learner, 3, 5, device=device)
    assert_close(got, mask_of(ref, 3, 5, device=device), what=f"causal_mask(3, 5, device={device!r})")


@points(1)
@pytest.mark.parametrize("len_q,len_k", [(-1, 4), (2, -3)])
def test_causal_mask_negative_length(learner, len_q, len_k):
    """a negative len_q or len_k raises ValueError"""
    expect_error(lambda: learner.causal_mask(len_q, len_k), "ValueError", f"causal_mask({len_q}, {len_k})")


@points(3)
@pytest.mark.parametrize("chunk", [1, 3])
def test_kv_cache_decoding(learner, ref, device, gen, chunk):
    """the last queries against the cached keys equal the last rows of full causal attention"""
    L = 8
    q, k, v = qkv(gen, 2, 2, L, L, 8, 8, device=device)
    full_out, _ = sdpa(learner, q, k, v, mask=mask_of(learner, L, L, device=device))
    want_full, _ = sdpa(ref, q, k, v, mask=mask_of(ref, L, L, device=device))
    assert_close(full_out, want_full, what=f"the output of causal attention over {L} positions")
    out, _ = sdpa(learner, q[..., L - chunk:, :], k, v, mask=mask_of(learner, chunk, L, device=device),
                  what=f"scaled_dot_product_attention for the last {chunk} queries")
    if out.shape == full_out[..., L - chunk:, :].shape:
        if not close(out, full_out[..., L - chunk:, :]):
            fail(f"the last {chunk} queries with the {L} cached keys and causal_mask({chunk}, {L}) give "
                 f"other outputs than the last {chunk} rows of the full causal attention: in decoding, "
                 f"query i of the chunk sits at position {L} - {chunk} + i and must see every key up to it")
    assert_close(out, want_full[..., L - chunk:, :], what=f"the output for the last {chunk} queries")


# -- MultiHeadAttention --------------------------------------------------------------------------

def mha_kwargs(position, **kw):
    return {"position": position, "max_len": MAX_LEN, "max_distance": MAX_DISTANCE, **kw}


def mha_weights(ref, gen, d_model, n_heads, position, **kw):
    """Random weights under the reference's state_dict keys, loaded into both modules."""
    keys = ref.MultiHeadAttention(d_model, n_heads, **mha_kwargs(position, **kw)).state_dict()
    sd = {}
    for name, t in keys.items():
        scale = d_model**-0.5 if name.endswith("proj.weight") else 0.1 if name.endswith("bias") else 1.0
        sd[name] = randn(gen, *t.shape) * scale
    return sd


def run_mha(impl, device, x, n_heads, position="none", state_dict=None, mask=None, causal=False,
            grad_output=None, train=False, return_state=False, **kw):
    forward_kwargs = {"causal": causal}
    if mask is not None:
        forward_kwargs["mask"] = mask
    return impl.probe("module", cls="MultiHeadAttention", args=(x.shape[-1], n_heads),
                      kwargs=mha_kwargs(position, **kw), device=device, inputs=(x,),
                      forward_kwargs=forward_kwargs, state_dict=state_dict, grad_output=grad_output,
                      train=train, return_state=return_state)


def mha_calls(impl, x, n_heads, position, state_dict, calls, device="cpu", dtype=None, init_seed=0, **kw):
    return impl.probe("module_calls", cls="MultiHeadAttention", args=(x.shape[-1], n_heads),
                      kwargs=mha_kwargs(position, **kw), device=device, dtype=dtype, init_seed=init_seed,
                      state_dict=state_dict, calls=calls)["outputs"]


def padding_mask(gen, batch, length, device):
    """[B, 1, 1, L] key padding (True = a real token): row 0 full, the others shorter."""
    lengths = torch.randint(2, length, (batch,), generator=gen)
    lengths[0] = length
    return (torch.arange(length)[None, :] < lengths[:, None])[:, None, None, :].to(device)


def mha_case(ref, gen, device, position, d_model=16, n_heads=4, length=7, batch=2):
    x = randn(gen, batch, length, d_model, device=device)
    return x, mha_weights(ref, gen, d_model, n_heads, position)


@points(1)
@pytest.mark.parametrize("position", POSITIONS)
def test_state_dict_keys(learner, ref, position):
    """the module's state_dict keys are the contract's (q_proj, ..., out_proj, pos, rel_k, rel_v)"""
    # built only, no forward: this case judges the module's structure
    facts = learner.probe("module_calls", cls="MultiHeadAttention", args=(16, 4), kwargs=mha_kwargs(position))["facts"]
    want = ref.MultiHeadAttention(16, 4, **mha_kwargs(position)).state_dict()
    got = facts["state_dict"]
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        fail(f"with position={position!r} the module's state_dict keys differ from the contract's: "
             + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
             + (f"unexpected {extra}" if extra else "")
             + ". Name the submodules q_proj, k_proj, v_proj, out_proj (nn.Linear(D, D) with bias), "
               "pos for 'learned' and rel_k, rel_v for 'relative'; anything else belongs in a "
               "non-persistent buffer, so the grader can load weights by name")
    for name, p in facts["parameters"].items():
        if name in want and p["shape"] != list(want[name].shape):
            fail(f"{name} has shape {p['shape']}, expected {list(want[name].shape)}")


@points(2)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("position", ["none", "sinusoidal", "learned", "relative"])
def test_mha_values(learner, ref, device, gen, position, causal):
    """MultiHeadAttention's output with the reference's weights, for each position scheme"""
    x, sd = mha_case(ref, gen, device, position)
    got = run_mha(learner, device, x, 4, position, sd, causal=causal)["output"]
    want = run_mha(ref, device, x, 4, position, sd, causal=causal)["output"]
    assert_close(got, want, what=f"MultiHeadAttention(16, 4, position={position!r})(x, causal={causal})")


@points(2)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_mha_rope_rotates_q_and_k(learner, ref, device, gen, causal):
    """position="rope" rotates q and k after the head split, and never v"""
    x, sd = mha_case(ref, gen, device, "rope")
    got = run_mha(learner, device, x, 4, "rope", sd, causal=causal)["output"]
    want = run_mha(ref, device, x, 4, "rope", sd, causal=causal)["output"]
    if got.shape == want.shape and not close(got, want, atol=1e-4):
        fail(f"with position='rope' (causal={causal}) the output differs from the reference by up to "
             f"{max_diff(got, want):.3g}. RoPE rotates q and k per head: "
             "split heads to [B, H, L, d] first, then apply_rope(q) and apply_rope(k) with interleaved=True "
             "and the default positions 0..L-1; v is not rotated (it carries content, not position)")
    assert_close(got, want, what=f"MultiHeadAttention(16, 4, position='rope')(x, causal={causal})")


@points(2)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_mha_alibi_bias_unscaled(learner, ref, device, gen, causal):
    """position="alibi" adds alibi_bias to the logits after the 1/sqrt(d) scaling, unscaled"""
    x, sd = mha_case(ref, gen, device, "alibi", d_model=32, length=8)
    got = run_mha(learner, device, x, 4, "alibi", sd, causal=causal)["output"]
    want = run_mha(ref, device, x, 4, "alibi", sd, causal=causal)["output"]
    if got.shape == want.shape and not close(got, want, atol=1e-4):
        fail(f"with position='alibi' (causal={causal}) the output differs from the reference by up to "
             f"{max_diff(got, want):.3g}. The bias alibi_bias(H, L, L) "
             "[H, L, L] is added to q·kᵀ/sqrt(d), after the scaling and not divided by sqrt(d) "
             "itself (pass it as bias=), and it broadcasts over the batch")
    assert_close(got, want, what=f"MultiHeadAttention(32, 4, position='alibi')(x, causal={causal})")


@points(1)
@pytest.mark.parametrize("position", POSITIONS)
def test_mha_padding_mask(learner, ref, device, gen, position):
    """a [B, 1, 1, L] key padding mask hides the padded keys"""
    x, sd = mha_case(ref, gen, device, position)
    mask = padding_mask(gen, 2, 7, device)
    got = run_mha(learner, device, x, 4, position, sd, mask=mask)["output"]
    want = run_mha(ref, device, x, 4, position, sd, mask=mask)["output"]
    assert_close(got, want, what=f"MultiHeadAttention(16, 4, position={position!r})(x, mask=padding)")


@points(3)
@pytest.mark.parametrize("position", ["none", "alibi"])
def test_mha_causal_with_padding_mask(learner, ref, device, gen, position):
    """causal=True with a padding mask applies both: mask AND causal_mask(L, L)"""
    x, sd = mha_case(ref, gen, device, position)
    mask = padding_mask(gen, 2, 7, device)
    got = run_mha(learner, device, x, 4, position, sd, mask=mask, causal=True)["output"]
    want = run_mha(ref, device, x, 4, position, sd, mask=mask, causal=True)["output"]
    if got.shape == want.shape:
        only_mask = run_mha(ref, device, x, 4, position, sd, mask=mask)["output"]
        if close(got, only_mask):
            fail("with causal=True and a mask, your output is that of the mask alone: the causal mask was "
                 "dropped, so earlier tokens see later ones; combine them: mask & causal_mask(L, L)")
    assert_close(got, want, what=f"MultiHeadAttention(position={position!r})(x, mask=padding, causal=True)")


@points(3)
def test_mha_heads_split_merge(learner, ref, device, gen):
    """heads split as view(B, L, H, d).transpose(1, 2) and merge back by the exact inverse"""
    x = randn(gen, 2, 6, 16, device=device)
    sd = mha_weights(ref, gen, 16, 1, "none")
    one = run_mha(learner, device, x, 1, "none", sd)["output"]
    assert_close(one, run_mha(ref, device, x, 1, "none", sd)["output"], what="MultiHeadAttention(16, 1)(x)")
    got = run_mha(learner, device, x, 4, "none", sd)["output"]
    want = run_mha(ref, device, x, 4, "none", sd)["output"]
    if got.shape == want.shape and not close(got, want, atol=1e-4):
        fail("with n_heads=1 the output is right, with n_heads=4 and the same weights it is not: the heads "
             "are split or merged in the wrong order. Split [B, L, D] with view(B, L, H, d).transpose(1, 2) "
             "so head h owns channels h*d .. (h+1)*d - 1, and merge [B, H, L, d] with transpose(1, 2) "
             "before reshape(B, L, D); reshaping without the transpose mixes positions and heads")
    assert_close(got, want, what="MultiHeadAttention(16, 4)(x)")


@points(1)
@pytest.mark.parametrize("position", POSITIONS)
def test_mha_causal_prefix(learner, ref, gen, position):
    """with causal=True, later tokens never change earlier outputs (decoding one token at a time)"""
    L = 6
    x, sd = mha_case(ref, gen, "cpu", position, length=L)
    calls = [{"inputs": (x[:, :t],), "forward_kwargs": {"causal": True}} for t in (L, 1, 3, L - 1)]
    full, *prefixes = mha_calls(learner, x, 4, position, sd, calls)
    for t, out in zip((1, 3, L - 1), prefixes):
        check_tensor(full, f"forward(x[:, :{L}])")
        check_tensor(out, f"forward(x[:, :{t}])")
        if out.shape != (2, t, 16) or full.shape != (2, L, 16):
            assert_close(out, full[:, :t], what=f"forward(x[:, :{t}], causal=True)")
        if not close(out, full[:, :t]):
            fail(f"with position={position!r} and causal=True, forward(x[:, :{t}]) differs from the first "
                 f"{t} rows of forward(x) over {L} tokens: the later tokens leaked into earlier outputs. "
                 "Each position may only see itself and earlier ones, whatever follows")


@points(2)
@pytest.mark.parametrize("position", POSITIONS)
def test_mha_gradients(learner, ref, device, gen, position):
    """gradients reach every parameter and x, as in the reference"""
    x, sd = mha_case(ref, gen, device, position)
    g = randn(gen, *x.shape, device=device)
    got = run_mha(learner, device, x, 4, position, sd, causal=True, grad_output=g)
    want = run_mha(ref, device, x, 4, position, sd, causal=True, grad_output=g)
    for name, w in want["param_grads"].items():
        gp = got["param_grads"].get(name)
        if gp is None:
            fail(f"no gradient reached {name} (position={position!r}): is it used through .data or "
                 ".detach(), rebuilt in forward, or not used at all?")
        assert_close(gp, w, what=f"the gradient of {name} (position={position!r})")
    if got["input_grads"][0] is None:
        fail("no gradient reached x: is the output detached from it?")
    assert_close(got["input_grads"][0], want["input_grads"][0], what=f"the gradient of x (position={position!r})")


@points(1)
def test_mha_dropout_zero_deterministic(learner, ref, device, gen):
    """with dropout=0, training mode is deterministic and equals eval mode"""
    x, sd = mha_case(ref, gen, device, "none")
    calls = [{"inputs": (x,), "train": True}, {"inputs": (x,), "train": True}]
    first, second = mha_calls(learner, x, 4, "none", sd, calls, device=device, dropout=0.0)
    want = run_mha(ref, device, x, 4, "none", sd)["output"]
    assert_close(first, want, what="forward(x) in training mode with dropout=0.0")
    assert_close(second, first, what="a second forward(x) in training mode with dropout=0.0")


@points(2)
def test_dropout_off_in_eval(learner, ref, device, gen):
    """in eval() no dropout is applied, whatever the module's dropout"""
    position = positions_ready(learner, ["alibi"])[:1] or ["none"]  # a bias path when alibi is there
    position = position[0]
    x, sd = mha_case(ref, gen, device, position)
    calls = [{"inputs": (x,), "train": False}, {"inputs": (x,), "train": False}]
    first, second = mha_calls(learner, x, 4, position, sd, calls, device=device, dropout=0.5)
    want = run_mha(ref, device, x, 4, position, sd, dropout=0.5)["output"]
    # blame dropout only on its evidence: two eval() calls on the same input that differ (the same
    # output twice is a deterministic mistake, which the value check and the diagnosis name)
    if first.shape == want.shape == second.shape and not close(first, want, atol=1e-4) \
            and not close(first, second, 0, 0):
        fail("with dropout=0.5 two forward(x) calls in eval() on the same x gave different outputs, and "
             "the reference applies no dropout in eval(): F.dropout and dropout_p do not look at "
             "self.training; pass dropout_p = self.dropout if self.training else 0.0")
    assert_close(first, want, what="forward(x) in eval() with dropout=0.5")
    assert_close(second, first, what="a second forward(x) in eval() with dropout=0.5")


@points(2)
def test_dropout_in_training(learner, ref, device, gen):
    """in training mode with dropout > 0 the attention weights are dropped: outputs vary"""
    x, sd = mha_case(ref, gen, device, "none", length=8)
    calls = [{"inputs": (x,), "train": True}, {"inputs": (x,), "train": True}, {"inputs": (x,), "train": False}]
    first, second, evaluated = mha_calls(learner, x, 4, "none", sd, calls, device=device, dropout=0.5)
    tensors([first, second, evaluated], 3, "forward(x)")
    if close(first, evaluated, 0, 0) or close(second, evaluated, 0, 0):
        fail("with dropout=0.5 the output in training mode equals the output in eval(): the attention "
             "weights must be dropped while training (pass dropout_p=self.dropout when self.training)")
    if close(first, second, 0, 0):
        fail("two forward calls in training mode with dropout=0.5 gave the same output: dropout must draw "
             "a fresh random mask on every call")
    assert_close(evaluated, run_mha(ref, device, x, 4, "none", sd, dropout=0.5)["output"],
                 what="forward(x) in eval() with dropout=0.5, after training-mode calls")


@points(1)
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("position", ["rope", "alibi"])
def test_mha_dtype(learner, ref, device, gen, position, dtype):
    """a module cast to float64, float16 or bfloat16 computes in that dtype"""
    x, sd = mha_case(ref, gen, device, position)
    x = x.to(dtype)
    calls = [{"inputs": (x,), "forward_kwargs": {"causal": True}}]
    (got,) = mha_calls(learner, x, 4, position, sd, calls, device=device, dtype=dtype)
    (want,) = mha_calls(ref, x, 4, position, sd, calls, device=device, dtype=dtype)
    # float64: float32's tolerance (the encodings may work in float32); half: twice HALF_TOL, as
    # out_proj sums D values that each carry the rounding of the attention
    t = {k: 2 * v for k, v in tol(dtype).items()} if dtype != torch.float64 else {"rtol": 1.3e-6, "atol": 1e-5}
    assert_close(got, want, what=f"MultiHeadAttention(position={position!r}).to({dtype_id(dtype)})(x)", **t)


@points(1)
def test_mha_rope_base(learner, ref, device, gen):
    """position="rope" rotates with the module's rope_base (500000 as in LLaMA 3), not always 10000"""
    x, sd = mha_case(ref, gen, device, "rope")
    got = run_mha(learner, device, x, 4, "rope", sd, causal=True, rope_base=500000.0)["output"]
    want = run_mha(ref, device, x, 4, "rope", sd, causal=True, rope_base=500000.0)["output"]
    assert_close(got, want, what="MultiHeadAttention(16, 4, position='rope', rope_base=500000)(x, causal=True)")


@points(1)
def test_projections_start_apart(learner):
    """q_proj, k_proj, v_proj and out_proj start from their own random weights, not one copied four times"""
    state = run_mha(learner, "cpu", torch.zeros(1, 2, 16), 4, return_state=True)["state_dict"]
    names = [f"{p}_proj.weight" for p in ("q", "k", "v", "out")]
    found = [n for n in names if isinstance(state.get(n), torch.Tensor)]
    for i, a in enumerate(found):
        for b in found[i + 1:]:
            if state[a].shape == state[b].shape and torch.equal(state[a], state[b]):
                fail(f"{a} and {b} start from the same weights: a layer copied (copy.deepcopy, [layer] * 4) "
                     "instead of four nn.Linear(D, D) made one by one, so the heads start symmetric")


@points(3)
def test_torch_attention_not_used(learner, gen):
    """the attention is your own: torch's scaled_dot_product_attention and nn.MultiheadAttention are not called"""
    q, k, v = qkv(gen, 2, 2, 4, 6, 8, 8)
    mask = random_mask(gen, 4, 6)
    x = randn(gen, 2, 5, 16)
    pad = padding_mask(gen, 2, 5, "cpu")
    steps = [{"call": "scaled_dot_product_attention", "args": [q, k, v]},
             {"call": "scaled_dot_product_attention", "args": [q, k, v],
              "kwargs": {"mask": mask, "bias": randn(gen, 4, 6), "dropout_p": 0.1}}]
    for position in positions_ready(learner, ("none", "sinusoidal", "learned", "rope", "alibi")):
        steps.append({"module": "MultiHeadAttention", "args": [16, 4], "kwargs": {"position": position},
                      "inputs": [x], "forward_kwargs": {"mask": pad, "causal": True}})
    steps.append({"module": "MultiHeadAttention", "args": [16, 4], "kwargs": {"dropout": 0.1},
                  "inputs": [x], "train": True})
    found = learner.probe("torch_ops", steps=steps, cls="scaled_dot_product_attention or MultiHeadAttention")["found"]
    if found:
        names = sorted(found, key=lambda name: (name.startswith("autograd"), name))  # what the code called first
        used = "; ".join(f"{name} (in {found[name]})" for name in names[:4])
        fail(f"your code calls torch's own attention: {used}. This exercise is to write attention yourself "
             "(logits q·kᵀ/sqrt(d), mask with -inf, softmax over the keys, zero rows with no key, weights·v). "
             "Besides, SDPA's is_causal is aligned top-left and nn.MultiheadAttention's bool masks mean "
             "True = ignore, both the opposite of this kit")


@points(1)
def test_unknown_position(learner):
    """an unknown position raises ValueError that lists the allowed ones"""
    try:
        value = run_mha(learner, "cpu", torch.zeros(1, 3, 16), 4, "absolute")
    except LearnerError as err:
        if err.kind != "exception":
            raise
        if err.exc_type != "ValueError":
            fail(f"MultiHeadAttention(16, 4, position='absolute') raised {err.exc_type}, expected ValueError: "
                 f"{err.summary}")
        missing = [p for p in POSITIONS if p not in err.summary]
        if missing:
            fail(f"the ValueError for position='absolute' should name the allowed positions "
                 f"({', '.join(POSITIONS)}) so the caller can fix the call; it does not mention "
                 f"{', '.join(missing)}: {err.summary}")
        return
    fail(f"MultiHeadAttention(16, 4, position='absolute') returned {type(value).__name__} instead of raising "
         "ValueError")


@points(1)
@pytest.mark.parametrize("d_model,n_heads", [(10, 4), (16, 3)])
def test_heads_must_divide_d_model(learner, d_model, n_heads):
    """d_model not divisible by n_heads raises ValueError"""
    expect_error(lambda: run_mha(learner, "cpu", torch.zeros(1, 3, d_model), n_heads), "ValueError",
                 f"MultiHeadAttention({d_model}, {n_heads})")


@points(1)
@pytest.mark.parametrize("position,dropout", [("none", 1.0), ("none", -0.5), ("relative", 0.1)])
def test_mha_bad_dropout(learner, position, dropout):
    """dropout outside [0, 1), or dropout with position="relative", raises ValueError"""
    expect_error(lambda: run_mha(learner, "cpu", torch.zeros(1, 3, 16), 4, position, dropout=dropout),
                 "ValueError", f"MultiHeadAttention(16, 4, position={position!r}, dropout={dropout})")


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    small = [torch.randn(1, 1, 4, 8, generator=gen) for _ in range(3)]
    got = tensors(learner.scaled_dot_product_attention(*small), 2, "scaled_dot_product_attention")[0]
    assert_close(got, ref.scaled_dot_product_attention(*small)[0], what="attention on [1, 1, 4, 8] (the large input is timed only once a small one is right)")
    q, k, v = (torch.randn(1, 1, 512, 16, generator=gen) for _ in range(3))
    assert_fast(learner, "scaled_dot_product_attention on [1, 1, 512, 16]",
                attr="scaled_dot_product_attention", args=(q, k, v), kwargs={"mask": torch.ones(512, 512, dtype=torch.bool).tril()})
