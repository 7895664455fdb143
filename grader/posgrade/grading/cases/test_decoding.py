"""Hidden cases for the exercise decoding (after attention): repeat_kv, grouped-query attention,
a KV cache and Llama's decoder self-attention.

repeat_kv and grouped_query_attention are graded on random inputs against the reference. KVCache
is not an nn.Module and keeps state between calls, so it is driven in the worker by the kv_cache
probe (a sequence of updates; every update's result and the length after it come back).
DecoderSelfAttention is driven by the decode probe: random weights under the reference's
state_dict keys (fixed by the contract) are loaded into both modules, and a sequence is run
through forward in chunks with one cache (a prefill, then steps), or whole without one. The key
property is checked on the learner's own module: decoding token by token gives the rows of the
full forward.

Shapes are small (d_model 32, 4 query heads of width 8, up to 9 tokens) except the one
efficiency case. The exercise stands alone: nothing here needs a later exercise.
"""

import math

import pytest
import torch

from posgrade.diagnosis.compare import assert_close, assert_equal, check_tensor, fail
from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors

EXERCISE = "decoding"
D_MODEL, N_HEADS = 32, 4
# (n_kv_heads, id): multi-head (None = n_heads), grouped (2 kv heads for 4 query heads), multi-query
KV_HEADS = [pytest.param(None, id="mha"), pytest.param(2, id="gqa"), pytest.param(1, id="mqa")]


def host(t):
    return t.detach().to("cpu", torch.float64)


def close(got, want, rtol=1e-4, atol=1e-5):
    """For diagnoses: got and want hold about the same values (any device, any dtype)."""
    if not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)):
        return False
    got, want = host(got), host(want)
    return got.shape == want.shape and torch.allclose(got, want, rtol=rtol, atol=atol)


def shape_str(shape):
    return "[" + ", ".join(map(str, shape)) + "]"


# -- repeat_kv -----------------------------------------------------------------------------------

def repeat(impl, x, n_rep):
    out = impl.repeat_kv(x, n_rep)
    check_tensor(out, f"repeat_kv(x {shape_str(x.shape)}, {n_rep})")
    return out


@points(2)
@pytest.mark.parametrize("shape,n_rep", [((2, 2, 5, 8), 3), ((1, 1, 4, 6), 4), ((3, 4, 2, 8), 1)],
                         ids=["gqa", "mqa", "n_rep1"])
def test_repeat_kv_values(learner, ref, device, gen, shape, n_rep):
    """repeat_kv repeats each kv head n_rep times: [B, Hkv, L, d] -> [B, Hkv * n_rep, L, d]"""
    x = randn(gen, *shape, device=device)
    assert_close(repeat(learner, x, n_rep), repeat(ref, x, n_rep), what=f"repeat_kv(x {shape_str(shape)}, {n_rep})")


@points(3)
def test_repeat_kv_order(learner, ref, gen):
    """query head h uses kv head h // n_rep: each kv head repeats consecutively (repeat_interleave)"""
    x = randn(gen, 2, 2, 3, 4)
    got, want = repeat(learner, x, 3), repeat(ref, x, 3)
    if close(got, x.repeat(1, 3, 1, 1)):
        fail("repeat_kv(x, 3) with 2 kv heads gives the heads in the order 0, 1, 0, 1, 0, 1 (x.repeat(1, n_rep, 1, 1)): "
             "query head h must use kv head h // n_rep, so the order is 0, 0, 0, 1, 1, 1 "
             "(x.repeat_interleave(n_rep, dim=1), or x[:, :, None].expand(...).reshape(...))")
    assert_close(got, want, what="repeat_kv(x [2, 2, 3, 4], 3)")


@points(1)
def test_repeat_kv_bad_n_rep(learner):
    """n_rep < 1 raises ValueError"""
    expect_error(lambda: learner.repeat_kv(torch.zeros(1, 2, 3, 4), 0), "ValueError", "repeat_kv(x, 0)")


# -- grouped_query_attention ---------------------------------------------------------------------

def gqa(impl, q, k, v, **kw):
    return tensors(impl.grouped_query_attention(q, k, v, **kw), 2, "grouped_query_attention(q, k, v)")


def qkv(gen, B, Hq, Hkv, Lq, Lk, d, dv, device="cpu"):
    return (randn(gen, B, Hq, Lq, d, device=device), randn(gen, B, Hkv, Lk, d, device=device),
            randn(gen, B, Hkv, Lk, dv, device=device))


def what_of(q, k, v, **kw):
    extra = "".join(f", {n}={'[' + 'x'.join(map(str, a.shape)) + ']' if isinstance(a, torch.Tensor) else a}"
                    for n, a in kw.items())
    return f"q {shape_str(q.shape)}, k {shape_str(k.shape)}, v {shape_str(v.shape)}{extra}"


# (B, Hq, Hkv, Lq, Lk, d, dv): grouped, multi-query, multi-head, one query over a cache, dv != d
GQA_SHAPES = [(2, 6, 2, 5, 5, 8, 8), (1, 4, 1, 3, 7, 16, 16), (2, 3, 3, 4, 4, 8, 8), (3, 8, 2, 1, 9, 8, 6)]


@points(2)
@pytest.mark.parametrize("shape", GQA_SHAPES, ids=["gqa", "mqa", "mha", "one_query"])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_gqa_values(learner, ref, device, gen, shape, causal):
    """grouped_query_attention returns the weights and output of attention with shared kv heads"""
    q, k, v = qkv(gen, *shape, device=device)
    out, weights = gqa(learner, q, k, v, causal=causal)
    want_out, want_weights = gqa(ref, q, k, v, causal=causal)
    what = what_of(q, k, v, causal=causal)
    assert_close(weights, want_weights, what=f"the weights with {what}")
    assert_close(out, want_out, what=f"the output with {what}")


@points(3)
@pytest.mark.parametrize("len_q", [1, 3])
def test_gqa_causal_bottom_right(learner, ref, device, gen, len_q):
    """with causal=True and Lq < Lk the queries are the last Lq positions (bottom-right aligned)"""
    q, k, v = qkv(gen, 2, 4, 2, len_q, 6, 8, 8, device=device)
    out, weights = gqa(learner, q, k, v, causal=True)
    want_out, want = gqa(ref, q, k, v, causal=True)
    if weights.shape == want.shape:
        top_left = torch.ones(len_q, 6, dtype=torch.bool).tril()
        allowed = host(weights) != 0
        if (allowed == top_left.expand(allowed.shape)).all() and not torch.equal(top_left, host(want) != 0):
            fail(f"with causal=True, {len_q} queries and 6 keys, query i attends keys j <= i (tril(ones(Lq, Lk)), "
                 "aligned top-left, like SDPA's is_causal): the queries are the LAST Lq positions, so query i "
                 f"sits at Lk - Lq + i = {6 - len_q} + i and sees keys j <= {6 - len_q} + i")
    what = what_of(q, k, v, causal=True)
    assert_close(weights, want, what=f"the weights with {what}")
    assert_close(out, want_out, what=f"the output with {what}")


@points(2)
def test_gqa_logits_scaled_by_sqrt_d(learner, ref, gen):
    """the logits are divided by sqrt(d), d = the head width q.shape[-1]"""
    d = 16
    q, k, v = qkv(gen, 2, 4, 2, 5, 5, d, d)
    _, weights = gqa(learner, q, k, v)
    _, want = gqa(ref, q, k, v)
    if weights.shape == want.shape:
        others = {"not scaled at all": math.sqrt(d), "divided by d instead of sqrt(d)": 1 / math.sqrt(d)}
        for mistake, factor in others.items():
            if close(weights, gqa(ref, q * factor, k, v)[1]):
                fail(f"the weights are those of logits {mistake}: divide q·kᵀ by sqrt(d) with d = q.shape[-1] "
                     f"= {d}, the head width, before the softmax")
    assert_close(weights, want, what=f"the weights with {what_of(q, k, v)}")


@points(2)
@pytest.mark.parametrize("mask_shape", [(5, 7), (2, 1, 1, 7), (2, 4, 5, 7)], ids=lambda s: "x".join(map(str, s)))
def test_gqa_mask(learner, ref, device, gen, mask_shape):
    """a bool mask (True = may attend) of any broadcastable shape, combined with causal by AND"""
    q, k, v = qkv(gen, 2, 4, 2, 5, 7, 8, 8, device=device)
    mask = torch.rand(*mask_shape, generator=gen) < 0.7
    mask[..., 0] = True  # every query keeps a key
    mask = mask.to(device)
    for causal in (False, True):
        out, weights = gqa(learner, q, k, v, mask=mask, causal=causal)
        want_out, want = gqa(ref, q, k, v, mask=mask, causal=causal)
        what = what_of(q, k, v, mask=mask, causal=causal)
        assert_close(weights, want, what=f"the weights with {what}")
        assert_close(out, want_out, what=f"the output with {what}")


@points(1)
def test_gqa_fully_masked_row_gives_zeros(learner, ref, device, gen):
    """a query with no allowed key gets zero weights and a zero output, not NaN"""
    q, k, v = qkv(gen, 2, 4, 2, 4, 5, 8, 8, device=device)
    mask = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    mask[0, :, 1] = False
    mask[1, :, 3] = False
    mask = mask.to(device)
    out, weights = gqa(learner, q, k, v, mask=mask)
    want_out, want = gqa(ref, q, k, v, mask=mask)
    for name, got in (("weights", weights), ("output", out)):
        if torch.isnan(got).any():
            fail(f"the {name} of a query whose keys are all masked are NaN: softmax over a row of -inf is 0/0; "
                 "give such rows zero weights and a zero output")
    assert_close(weights, want, what="the weights with a fully masked query")
    assert_close(out, want_out, what="the output with a fully masked query")


@points(1)
@pytest.mark.parametrize("case", ["heads_not_multiple", "float_mask"])
def test_gqa_bad_arguments(learner, gen, case):
    """Hq not a multiple of Hkv raises ValueError; a non-bool mask raises TypeError"""
    if case == "heads_not_multiple":
        q, k, v = qkv(gen, 1, 6, 4, 3, 3, 8, 8)
        expect_error(lambda: learner.grouped_query_attention(q, k, v), "ValueError",
                     "grouped_query_attention with 6 query heads and 4 kv heads")
    else:
        q, k, v = qkv(gen, 1, 4, 2, 3, 3, 8, 8)
        expect_error(lambda: learner.grouped_query_attention(q, k, v, mask=torch.ones(3, 3)), "TypeError",
                     "grouped_query_attention with a float mask")


HALF_TOL = {torch.float16: (2.0**-8, 2.0**-8), torch.bfloat16: (2.0**-6, 2.0**-6)}  # (rtol, atol), as attention's


def dtype_id(dtype):
    return str(dtype).removeprefix("torch.")


@points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16], ids=dtype_id)
def test_gqa_dtype(learner, ref, device, gen, dtype):
    """float64, float16 and bfloat16 inputs give results in their own dtype"""
    q, k, v = (t.to(dtype) for t in qkv(gen, 2, 4, 2, 3, 6, 8, 8, device=device))
    out, weights = gqa(learner, q, k, v, causal=True)
    want_out, want = gqa(ref, q, k, v, causal=True)
    rtol, atol = HALF_TOL.get(dtype, (None, None))
    what = f"{dtype_id(dtype)} q {shape_str(q.shape)}, k {shape_str(k.shape)}, causal=True"
    assert_close(weights, want, what=f"the weights with {what}", rtol=rtol, atol=atol)
    assert_close(out, want_out, what=f"the output with {what}", rtol=rtol, atol=atol)


# -- KVCache -------------------------------------------------------------------------------------

def kv_updates(impl, updates, device="cpu"):
    result = impl.probe("kv_cache", updates=updates, device=device, cls="KVCache")
    return result["results"], result["lengths"]


def check_updates(got, want, lengths, want_lengths, chunks):
    assert_equal(lengths, want_lengths, f"KVCache().length before and after updates of {chunks} tokens")
    for i, (pair, (wk, wv)) in enumerate(zip(got, want)):
        gk, gv = tensors(pair, 2, f"update {i + 1}")
        if gk.shape != wk.shape and gk.shape[:2] == wk.shape[:2] and gk.shape[-2] == chunks[i]:
            fail(f"update {i + 1} returned only its own {chunks[i]} token(s), {shape_str(gk.shape)}: it must return "
                 f"every key and value cached so far ({wk.shape[-2]} tokens), the new ones last")
        assert_close(gk, wk, what=f"the keys returned by update {i + 1} (of {chunks} tokens)")
        assert_close(gv, wv, what=f"the values returned by update {i + 1} (of {chunks} tokens)")


def random_updates(gen, batch, heads, chunks, d=8, dv=6, device="cpu"):
    return [(randn(gen, batch, heads, n, d, device=device), randn(gen, batch, heads, n, dv, device=device))
            for n in chunks]


@points(2)
@pytest.mark.parametrize("batch", [1, 4])
def test_kv_cache_single_tokens(learner, ref, device, gen, batch):
    """KVCache.update appends one token at a time along the length dim and returns all of them"""
    updates = random_updates(gen, batch, 2, [1, 1], device=device)
    got, lengths = kv_updates(learner, updates, device)
    want, want_lengths = kv_updates(ref, updates, device)
    check_updates(got, want, lengths, want_lengths, [1, 1])


@points(2)
@pytest.mark.parametrize("batch,heads", [(1, 1), (4, 3)])
def test_kv_cache_chunks(learner, ref, device, gen, batch, heads):
    """a prefill of 5 tokens, then chunks of 1 and 2: length counts every token cached"""
    chunks = [5, 1, 2, 1]
    updates = random_updates(gen, batch, heads, chunks, device=device)
    got, lengths = kv_updates(learner, updates, device)
    want, want_lengths = kv_updates(ref, updates, device)
    check_updates(got, want, lengths, want_lengths, chunks)


@points(1)
@pytest.mark.parametrize("change", ["batch", "heads", "k_width", "v_width"])
def test_kv_cache_rejects_other_shapes(learner, gen, change):
    """an update whose batch, heads or width differ from the cached ones raises ValueError"""
    first = random_updates(gen, 2, 2, [3])
    kv_updates(learner, first)  # the first update alone must work
    B, H, d, dv = 2, 2, 8, 6
    B, H, d, dv = {"batch": (3, H, d, dv), "heads": (B, 4, d, dv), "k_width": (B, H, 4, dv),
                   "v_width": (B, H, d, 4)}[change]
    second = (randn(gen, B, H, 1, d), randn(gen, B, H, 1, dv))
    expect_error(lambda: kv_updates(learner, first + [second]), "ValueError",
                 f"an update with another {change.replace('_', ' ')} than the cache's")


# -- DecoderSelfAttention ------------------------------------------------------------------------

def module_weights(ref, gen, n_kv_heads, d_model=D_MODEL, n_heads=N_HEADS):
    """Random weights under the reference's state_dict keys, loaded into both modules."""
    keys = ref.DecoderSelfAttention(d_model, n_heads, n_kv_heads).state_dict()
    return {name: randn(gen, *t.shape) * d_model**-0.5 for name, t in keys.items()}


def decode(impl, x, n_kv_heads, sd, chunks, device="cpu", cache=True, n_heads=N_HEADS):
    result = impl.probe("decode", cls="DecoderSelfAttention", args=(x.shape[-1], n_heads),
                        kwargs={"n_kv_heads": n_kv_heads}, device=device, state_dict=sd, x=x,
                        chunks=list(chunks), cache=cache)
    for i, out in enumerate(result["outputs"]):
        check_tensor(out, f"forward of chunk {i + 1}")
    return result


def full(impl, x, n_kv_heads, sd, device="cpu"):
    """forward(x) over the whole sequence, without a cache."""
    return decode(impl, x, n_kv_heads, sd, [x.shape[1]], device, cache=False)["outputs"][0]


def kv_name(n_kv_heads):
    return f"n_kv_heads={n_kv_heads}"


@points(1)
@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
def test_state_dict_keys(learner, ref, n_kv_heads):
    """q_proj, k_proj, v_proj, o_proj without bias, with Llama's shapes (k, v: Hkv heads)"""
    facts = learner.probe("decode", cls="DecoderSelfAttention", args=(D_MODEL, N_HEADS),
                          kwargs={"n_kv_heads": n_kv_heads}, cache=False)["facts"]
    want = ref.DecoderSelfAttention(D_MODEL, N_HEADS, n_kv_heads).state_dict()
    got = facts["state_dict"]
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        fail(f"DecoderSelfAttention({D_MODEL}, {N_HEADS}, {kv_name(n_kv_heads)}) has other state_dict keys than "
             "the contract's: " + (f"missing {missing}" if missing else "") + ("; " if missing and extra else "")
             + (f"unexpected {extra}" if extra else "") + ". Name the projections q_proj, k_proj, v_proj, o_proj "
             "(nn.Linear with bias=False, as Llama), and keep anything else out of the state_dict")
    for name, p in facts["parameters"].items():
        if name in want and p["shape"] != list(want[name].shape):
            fail(f"{name} has shape {p['shape']}, expected {list(want[name].shape)} (k_proj and v_proj map D to "
                 "Hkv * d, the kv heads only)")


@points(2)
@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
@pytest.mark.parametrize("batch", [1, 4])
def test_forward_values(learner, ref, device, gen, n_kv_heads, batch):
    """forward(x) without a cache: causal GQA with half-split RoPE at positions 0 .. L-1"""
    x = randn(gen, batch, 7, D_MODEL, device=device)
    sd = module_weights(ref, gen, n_kv_heads)
    assert_close(full(learner, x, n_kv_heads, sd, device), full(ref, x, n_kv_heads, sd, device),
                 what=f"DecoderSelfAttention({D_MODEL}, {N_HEADS}, {kv_name(n_kv_heads)})(x {shape_str(x.shape)})")


@points(4)
@pytest.mark.parametrize("n_kv_heads", KV_HEADS)
def test_token_by_token_equals_full_forward(learner, ref, device, gen, n_kv_heads):
    """decoding one token at a time with a KVCache gives the rows of the full forward"""
    L = 6
    x = randn(gen, 2, L, D_MODEL, device=device)
    sd = module_weights(ref, gen, n_kv_heads)
    mine = full(learner, x, n_kv_heads, sd, device)
    steps = decode(learner, x, n_kv_heads, sd, [1] * L, device)["outputs"]
    want = full(ref, x, n_kv_heads, sd, device)
    assert_close(mine, want, what=f"forward(x) over all {L} tokens without a cache ({kv_name(n_kv_heads)})")
    for t, out in enumerate(steps):
        if out.shape != (2, 1, D_MODEL):
            fail(f"forward(x[:, {t}:{t + 1}], cache) returned shape {list(out.shape)}, expected [2, 1, {D_MODEL}]")
    got = torch.cat([s.to(mine.device) for s in steps], dim=1)
    if not close(steps[0], mine[:, :1]):
        fail(f"the first step, forward(x[:, :1], cache) with an empty cache, differs from row 0 of forward(x) by "
             f"{float((host(steps[0]) - host(mine[:, :1])).abs().max()):.3g}: with nothing cached, one token attends "
             "only to itself at position 0")
    bad = [t for t in range(L) if not close(steps[t], mine[:, t:t + 1])]
    if bad:
        fail(f"decoding token by token with one KVCache gives other outputs than your own forward(x) over the "
             f"whole sequence, at steps {bad} of {L}: step t must attend to the t + 1 cached keys and values, "
             "with its RoPE position t = cache.length (not 0)")
    assert_close(got, want, what=f"the {L} single-token steps, concatenated ({kv_name(n_kv_heads)})")


@points(3)
@pytest.mark.parametrize("batch", [1, 4])
def test_prefill_then_steps(learner, ref, device, gen, batch):
    """a prompt of 5 tokens in one call, then three single-token steps with the same cache"""
    chunks = [5, 1, 1, 1]
    x = randn(gen, batch, sum(chunks), D_MODEL, device=device)
    sd = module_weights(ref, gen, 2)
    got = decode(learner, x, 2, sd, chunks, device)["outputs"]
    want = decode(ref, x, 2, sd, chunks, device)["outputs"]
    assert_close(got[0], want[0], what="the prefill forward(x[:, :5], cache) with an empty cache")
    for i in range(1, len(chunks)):
        t = 5 + i - 1
        assert_close(got[i], want[i], what=f"step {i}, forward(x[:, {t}:{t + 1}], cache) after {t} cached tokens")


@points(3)
@pytest.mark.parametrize("chunks", [[4, 3], [2, 3, 2]], ids=["4-3", "2-3-2"])
def test_cache_positions(learner, ref, device, gen, chunks):
    """chunks of several tokens after a prefill: RoPE positions continue at cache.length, and the
    causal mask is bottom-right aligned"""
    x = randn(gen, 2, sum(chunks), D_MODEL, device=device)
    sd = module_weights(ref, gen, 2)
    result = decode(learner, x, 2, sd, chunks, device)
    want = decode(ref, x, 2, sd, chunks, device)
    assert_equal(result["lengths"], want["lengths"], f"cache.length before and after calls of {chunks} tokens")
    got = result["outputs"]
    assert_close(got[0], want["outputs"][0], what=f"the first call, forward(x[:, :{chunks[0]}], cache)")
    start = chunks[0]
    for i in range(1, len(chunks)):
        n = chunks[i]
        assert_close(got[i], want["outputs"][i],
                     what=f"call {i + 1}, forward(x[:, {start}:{start + n}], cache) after {start} cached tokens "
                          f"(positions {start} .. {start + n - 1})")
        start += n


@points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16], ids=dtype_id)
def test_module_dtype(learner, ref, device, gen, dtype):
    """a module cast to float64 or bfloat16 decodes in that dtype"""
    chunks = [4, 1, 2]
    x = randn(gen, 2, sum(chunks), D_MODEL, device=device)
    sd = module_weights(ref, gen, 2)
    kw = dict(cls="DecoderSelfAttention", args=(D_MODEL, N_HEADS), kwargs={"n_kv_heads": 2}, device=device,
              dtype=dtype, state_dict=sd, x=x, chunks=chunks)
    got, want = learner.probe("decode", **kw)["outputs"], ref.probe("decode", **kw)["outputs"]
    # float64: float32's tolerance (the angles are float32); bfloat16: twice HALF_TOL, as o_proj sums D
    # values that each carry the attention's rounding
    tol = {"rtol": 1.3e-6, "atol": 1e-5} if dtype == torch.float64 else \
        {"rtol": 2 * HALF_TOL[dtype][0], "atol": 2 * HALF_TOL[dtype][1]}
    for i, (g, w) in enumerate(zip(got, want)):
        check_tensor(g, f"forward of chunk {i + 1}")
        assert_close(g, w, what=f"call {i + 1} of a {dtype_id(dtype)} module with a cache (chunks {chunks})", **tol)


@points(2)
def test_gradients(learner, ref, device, gen):
    """gradients reach every projection and x, as in the reference"""
    x = randn(gen, 2, 5, D_MODEL, device=device)
    sd = module_weights(ref, gen, 2)
    g = randn(gen, 2, 5, D_MODEL, device=device)
    kw = dict(cls="DecoderSelfAttention", args=(D_MODEL, N_HEADS), kwargs={"n_kv_heads": 2}, device=device,
              inputs=(x,), state_dict=sd, grad_output=g)
    got, want = learner.probe("module", **kw), ref.probe("module", **kw)
    for name, w in want["param_grads"].items():
        gp = got["param_grads"].get(name)
        if gp is None:
            fail(f"no gradient reached {name}: is it used through .data or .detach(), or not at all?")
        assert_close(gp, w, what=f"the gradient of {name}")
    if got["input_grads"][0] is None:
        fail("no gradient reached x: is the output detached from it?")
    assert_close(got["input_grads"][0], want["input_grads"][0], what="the gradient of x")


@points(1)
@pytest.mark.parametrize("args", [(30, 4, None), (32, 4, 3), (12, 4, None)], ids=["d_model", "kv_heads", "odd_head"])
def test_bad_heads(learner, args):
    """D not divisible by H, H not a multiple of Hkv, or an odd head width raises ValueError"""
    d_model, n_heads, n_kv_heads = args
    expect_error(lambda: learner.probe("decode", cls="DecoderSelfAttention", args=(d_model, n_heads),
                                       kwargs={"n_kv_heads": n_kv_heads}, cache=False),
                 "ValueError", f"DecoderSelfAttention({d_model}, {n_heads}, n_kv_heads={n_kv_heads})")


@points(3)
def test_torch_attention_not_used(learner, gen):
    """the attention is your own: torch's scaled_dot_product_attention and nn.MultiheadAttention are not called"""
    q, k, v = qkv(gen, 2, 4, 2, 3, 5, 8, 8)
    x = randn(gen, 2, 5, D_MODEL)
    steps = [{"call": "grouped_query_attention", "args": [q, k, v]},
             {"call": "grouped_query_attention", "args": [q, k, v], "kwargs": {"causal": True}}]
    for n_kv_heads in (None, 2, 1):
        steps.append({"module": "DecoderSelfAttention", "args": [D_MODEL, N_HEADS], "kwargs": {"n_kv_heads": n_kv_heads},
                      "inputs": [x]})
    found = learner.probe("torch_ops", steps=steps, cls="grouped_query_attention or DecoderSelfAttention")["found"]
    if found:
        names = sorted(found, key=lambda name: (name.startswith("autograd"), name))
        used = "; ".join(f"{name} (in {found[name]})" for name in names[:4])
        fail(f"your code calls torch's own attention: {used}. This exercise is to write it yourself (repeat_kv, "
             "logits q·kᵀ/sqrt(d), a bottom-right causal mask, softmax over the keys, weights·v); besides, "
             "SDPA's is_causal is aligned top-left, wrong for the steps after a prefill")


@points(1)
def test_efficiency(learner, ref, gen):
    """a long sequence runs within 20x of the reference's time"""
    x = randn(gen, 1, 5, 64)
    sd = module_weights(ref, gen, 2, d_model=64)
    got = decode(learner, x, 2, sd, [5], cache=False)["outputs"][0]
    assert_close(got, decode(ref, x, 2, sd, [5], cache=False)["outputs"][0],
                 what="forward on [1, 5, 64] (the large input is timed only once a small one is right)")
    x = torch.randn(1, 256, 64, generator=gen)
    assert_fast(learner, f"DecoderSelfAttention(64, {N_HEADS}, n_kv_heads=2) on [1, 256, 64]",
                cls="DecoderSelfAttention", init_args=(64, N_HEADS), init_kwargs={"n_kv_heads": 2}, inputs=(x,))
