"""Hidden cases for the relative exercise.

Indices and buckets are integers and must match the reference exactly. The module's random
initialisation is graded by its statistics; its forward and gradient with the reference's
weights loaded (load_state_dict), so both compute with the same table. relative_attention
gets the same random q, k, v and tables as the reference. Property cases (the same tokens
shifted together attend the same way; T5 buckets grow with the distance and stay in range)
catch families of mistakes whatever their form.
"""

import math

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn, tensors
from posgrade.diagnosis.compare import assert_close, assert_equal, check_tensor, fail

EXERCISE = "relative"


def index(impl, len_q, len_k, max_distance, **kw):
    out = impl.relative_position_index(len_q, len_k, max_distance, **kw)
    check_tensor(out, f"relative_position_index({len_q}, {len_k}, {max_distance})")
    return out


def checked_index(impl, len_q, len_k, max_distance):
    """The learner's index, after checking it can index a table of 2K + 1 rows."""
    what = f"relative_position_index({len_q}, {len_k}, {max_distance})"
    idx = index(impl, len_q, len_k, max_distance)
    if list(idx.shape) != [len_q, len_k]:
        fail(f"{what} has shape {list(idx.shape)}, expected [len_q, len_k] = {[len_q, len_k]}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        fail(f"{what} has dtype {idx.dtype}; indices into a table must be integers (torch.long)")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) > 2 * max_distance):
        fail(f"{what} holds indices from {int(idx.min())} to {int(idx.max())}, outside the table's rows "
             f"0..2K = 0..{2 * max_distance}")
    return idx.cpu().long()


def attention(impl, q, k, v, rel_k, rel_v=None, mask=None):
    what = describe(q, k, v, rel_k, rel_v, mask)
    return tensors(impl.relative_attention(q, k, v, rel_k, rel_v, mask), 2, what)


def describe(q, k, v, rel_k, rel_v=None, mask=None):
    parts = [f"q {list(q.shape)}", f"k {list(k.shape)}", f"v {list(v.shape)}", f"rel_k {list(rel_k.shape)}"]
    if rel_v is not None:
        parts.append(f"rel_v {list(rel_v.shape)}")
    if mask is not None:
        parts.append(f"mask {list(mask.shape)}")
    return f"relative_attention({', '.join(parts)})"


def qkv(gen, device, batch, heads, len_q, len_k, d, d_v=None, dtype=torch.float32):
    """Random q, k, v and the two gathered tables, as relative_attention takes them."""
    d_v = d if d_v is None else d_v
    q = randn(gen, batch, heads, len_q, d, device=device, dtype=dtype)
    k = randn(gen, batch, heads, len_k, d, device=device, dtype=dtype)
    v = randn(gen, batch, heads, len_k, d_v, device=device, dtype=dtype)
    rel_k = randn(gen, len_q, len_k, d, device=device, dtype=dtype)
    rel_v = randn(gen, len_q, len_k, d_v, device=device, dtype=dtype)
    return q, k, v, rel_k, rel_v


def random_mask(gen, shape, device):
    """True = may attend; about one key in three masked."""
    return (torch.rand(*shape, generator=gen) > 0.35).to(device)


def close(a, b, atol=1e-5):
    return a.shape == b.shape and a.dtype == b.dtype and torch.allclose(a.cpu().double(), b.cpu().double(), atol=atol)


# -- relative_position_index ------------------------------------------------------------------

@points(2)
@pytest.mark.parametrize("len_q,len_k,max_distance", [(4, 4, 2), (1, 1, 0), (7, 7, 3), (5, 9, 2),
                                                      (9, 9, 16), (3, 12, 4)])
def test_position_index(learner, ref, len_q, len_k, max_distance):
    """relative_position_index gives clamp(j - q_pos(i), -K, K) + K for every (query, key)"""
    got = index(learner, len_q, len_k, max_distance)
    assert_close(got, ref.relative_position_index(len_q, len_k, max_distance),
                 what=f"relative_position_index({len_q}, {len_k}, {max_distance})")


@points(2)
def test_distance_sign(learner, ref):
    """the distance is key minus query (j - i): keys to the right of a query get rows above K"""
    what = "relative_position_index(6, 6, 3)"
    got, want = index(learner, 6, 6, 3), ref.relative_position_index(6, 6, 3)
    if close(got, 6 - want):
        fail(f"{what} is the mirror image of the expected table (row K + n where K - n was expected): "
             "the distance is key minus query, j - i, so a key to the right of its query (j > i) gets "
             "an index above K")
    assert_close(got, want, what=what)


@points(2)
def test_clip_at_max_distance(learner, ref):
    """distances beyond ±max_distance share the end rows 0 and 2K"""
    what = "relative_position_index(10, 10, 3)"
    got, want = index(learner, 10, 10, 3), ref.relative_position_index(10, 10, 3)
    if got.shape == want.shape and got.dtype == want.dtype and got.numel():
        lo, hi = int(got.min()), int(got.max())
        if (lo, hi) == (1, 5):
            fail(f"{what} holds indices 1..5 only: distances are clipped to ±(K - 1) = ±2. Clip to "
                 "[-K, K] = [-3, 3]; the table has 2K + 1 = 7 rows and both end rows are used")
        if (lo, hi) != (0, 6):
            fail(f"{what} holds indices {lo}..{hi}; with distances up to ±9 clipped to ±3 they should "
                 "run over every row 0..2K = 0..6 (index K = 3 is distance 0)")
    assert_close(got, want, what=what)


@points(2)
def test_queries_are_last_positions(learner, ref):
    """with len_q < len_k the queries sit at the last len_q positions (KV cache)"""
    what = "relative_position_index(3, 8, 2)"
    got, want = index(learner, 3, 8, 2), ref.relative_position_index(3, 8, 2)
    first = ref.relative_position_index(8, 8, 2)[:3]
    if close(got, first):
        fail(f"{what} places the 3 queries at positions 0, 1, 2; with a KV cache the new queries are "
             "the last ones: q_pos(i) = len_k - len_q + i = 5, 6, 7")
    assert_close(got, want, what=what)


@points(1)
def test_position_index_device(learner, ref, device):
    """relative_position_index(..., device=) creates the index there"""
    got = index(learner, 4, 6, 2, device=device)
    assert_close(got, ref.relative_position_index(4, 6, 2, device=device),
                 what=f"relative_position_index(4, 6, 2, device={device!r})")


# -- RelativePositionEmbedding ----------------------------------------------------------------

def run_module(impl, num_units, max_distance, len_q, len_k, device="cpu", state_dict=None,
               grad_output=None, return_state=False):
    return impl.probe("module", cls="RelativePositionEmbedding", args=(num_units, max_distance),
                      device=device, inputs=(len_q, len_k), state_dict=state_dict,
                      grad_output=grad_output, return_state=return_state)


def table(gen, num_units, max_distance):
    """A weight table for both modules, so forward is graded on the same numbers."""
    return {"weight": randn(gen, 2 * max_distance + 1, num_units)}


@points(2)
def test_table_has_2k_plus_1_rows(learner):
    """one parameter `weight` [2K + 1, num_units]: row K is distance 0"""
    facts = run_module(learner, 8, 3, 2, 2)["facts"]
    params = facts["parameters"]
    if "weight" not in params:
        fail(f"after __init__ the module's parameters are {sorted(params) or 'none'}; create "
             "self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, num_units)) in __init__")
    assert_equal(sorted(params), ["weight"], "the module's parameter names")
    shape = params["weight"]["shape"]
    if shape == [6, 8]:
        fail("weight has 2K = 6 rows for max_distance K = 3; distances -K..K are 2K + 1 = 7 values, "
             "so the table needs 2K + 1 rows, with distance 0 at row K")
    assert_equal(shape, [7, 8], "weight's shape for num_units=8, max_distance=3")
    if not params["weight"]["requires_grad"]:
        fail("weight does not require grad, so it would never be trained")
    assert_equal(facts["state_dict"], ["weight"], "state_dict()'s keys")


@points(1)
def test_init_xavier_uniform(learner):
    """weight starts xavier-uniform: U(-a, a) with a = sqrt(6 / (num_units + 2K + 1))"""
    num_units, max_distance = 256, 64
    state = run_module(learner, num_units, max_distance, 1, 1, return_state=True)["state_dict"]
    if not isinstance(state.get("weight"), torch.Tensor):
        fail(f"the module's state_dict() has {sorted(state) or 'no entries'}, expected `weight`: create "
             "self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, num_units)) in __init__ and "
             "initialise it there")
    w = state["weight"].double()
    bound = math.sqrt(6.0 / (num_units + 2 * max_distance + 1))
    std = float(w.std())
    if abs(std - 1) < 0.05:
        fail(f"weight has standard deviation {std:.3g}, as nn.Embedding's default N(0, 1) gives; "
             "initialise it with nn.init.xavier_uniform_(self.weight)")
    if float(w.abs().max()) > bound * (1 + 1e-6):
        fail(f"weight holds values up to {float(w.abs().max()):.3g} in size, beyond xavier-uniform's bound "
             f"a = sqrt(6 / (fan_in + fan_out)) = {bound:.3g}; use nn.init.xavier_uniform_(self.weight)")
    # 33024 draws from U(-a, a): the sample std is within 1% of a / sqrt(3)
    if abs(std / (bound / math.sqrt(3)) - 1) > 0.03 or abs(float(w.mean())) > 0.01 * bound:
        fail(f"weight has mean {float(w.mean()):.3g} and standard deviation {std:.3g}; xavier-uniform "
             f"gives mean 0 and standard deviation a / sqrt(3) = {bound / math.sqrt(3):.3g}")


@points(3)
@pytest.mark.parametrize("len_q,len_k,max_distance,num_units", [(4, 4, 2, 8), (3, 9, 2, 6), (1, 1, 0, 4),
                                                                (6, 6, 10, 5)])
def test_embedding_forward(learner, ref, device, gen, len_q, len_k, max_distance, num_units):
    """forward(len_q, len_k) gathers weight[relative_position_index(len_q, len_k, K)]"""
    sd = table(gen, num_units, max_distance)
    got = run_module(learner, num_units, max_distance, len_q, len_k, device, state_dict=sd)["output"]
    want = run_module(ref, num_units, max_distance, len_q, len_k, device, state_dict=sd)["output"]
    assert_close(got, want, what=f"RelativePositionEmbedding({num_units}, {max_distance})({len_q}, {len_k})")


@points(2)
def test_embedding_gradient(learner, ref, device, gen):
    """gradients reach weight, each row summed over the pairs that use it"""
    sd = table(gen, 4, 2)
    g = randn(gen, 5, 7, 4, device=device)
    got = run_module(learner, 4, 2, 5, 7, device, state_dict=sd, grad_output=g)["param_grads"]
    want = run_module(ref, 4, 2, 5, 7, device, state_dict=sd, grad_output=g)["param_grads"]
    if got.get("weight") is None:
        fail("no gradient reached weight: is it used through .data or .detach(), or copied in forward?")
    assert_close(got["weight"], want["weight"], what="weight's gradient after forward(5, 7)")


# -- relative_attention -----------------------------------------------------------------------

ATTENTION_SHAPES = {  # id: (B, H, Lq, Lk, d, dv, with rel_v, mask shape or None)
    "keys-only": (2, 3, 5, 5, 8, 8, False, None),
    "keys-values": (2, 2, 6, 6, 16, 16, True, None),
    "mask-qk": (2, 2, 6, 6, 8, 8, True, "qk"),
    "mask-b1qk-fewer-queries": (2, 4, 3, 7, 8, 8, True, "b1qk"),
    "one-token": (2, 1, 1, 1, 4, 4, True, None),
    "dv-not-d": (1, 2, 4, 4, 8, 6, True, None),
}


@points(4)
@pytest.mark.parametrize("shape", list(ATTENTION_SHAPES))
def test_attention_values(learner, ref, device, gen, shape):
    """relative_attention gives softmax((q·kᵀ + q·rel_kᵀ) / sqrt(d))·(v + rel_v) and its weights"""
    b, h, lq, lk, d, dv, with_v, mask_shape = ATTENTION_SHAPES[shape]
    q, k, v, rel_k, rel_v = qkv(gen, device, b, h, lq, lk, d, dv)
    rel_v = rel_v if with_v else None
    mask = None
    if mask_shape:
        mask = random_mask(gen, (lq, lk) if mask_shape == "qk" else (b, 1, lq, lk), device)
    what = describe(q, k, v, rel_k, rel_v, mask)
    out, weights = attention(learner, q, k, v, rel_k, rel_v, mask)
    want_out, want_weights = ref.relative_attention(q, k, v, rel_k, rel_v, mask)
    assert_close(weights, want_weights, what=f"the weights of {what}")
    assert_close(out, want_out, what=f"the output of {what}")


def softmax_weights(q, k, rel_k, scale_qk, scale_rel):
    logits = (q.double() @ k.double().transpose(-2, -1)) * scale_qk
    logits = logits + torch.einsum("...qd,qkd->...qk", q.double(), rel_k.double()) * scale_rel
    return torch.softmax(logits, dim=-1)


@points(2)
def test_logits_scaled_by_sqrt_d(learner, ref, device, gen):
    """the whole logit (q·k + q·rel_k) is divided by sqrt(d), the relative term too"""
    q, k, v, rel_k, _ = qkv(gen, device, 2, 2, 5, 5, 64)
    what = describe(q, k, v, rel_k)
    _, weights = attention(learner, q, k, v, rel_k)
    _, want = ref.relative_attention(q, k, v, rel_k)
    s = 1 / math.sqrt(64)
    if weights.shape == want.shape and weights.dtype == want.dtype:
        if close(weights, softmax_weights(q, k, rel_k, s, 1.0).to(weights.dtype)):
            fail(f"the weights of {what} divide only q·k by sqrt(d); the relative term q·rel_k must be "
                 "scaled too: (q·kᵀ + q·rel_kᵀ) / sqrt(d), as tensor2tensor's pre-scaled q gives")
        if close(weights, softmax_weights(q, k, rel_k, 1.0, 1.0).to(weights.dtype)):
            fail(f"the weights of {what} are not scaled at all: divide the logits q·kᵀ + q·rel_kᵀ by "
                 "sqrt(d), with d the head width q.shape[-1] (T5 leaves the scale out; Shaw et al. do not)")
    assert_close(weights, want, what=f"the weights of {what}")


@points(2)
def test_value_term(learner, ref, device, gen):
    """the output adds the value term weights·rel_v: o_i = sum_j w_ij (v_j + rel_v_ij)"""
    q, k, v, rel_k, rel_v = qkv(gen, device, 2, 2, 6, 6, 8)
    what = describe(q, k, v, rel_k, rel_v)
    out, _ = attention(learner, q, k, v, rel_k, rel_v)
    want, _ = ref.relative_attention(q, k, v, rel_k, rel_v)
    without, _ = ref.relative_attention(q, k, v, rel_k)
    if close(out, without):
        fail(f"the output of {what} equals the output without rel_v: add the value term "
             "sum_j w_ij rel_v[i, j] (torch.einsum('...qk,qkd->...qd', weights, rel_v))")
    assert_close(out, want, what=f"the output of {what}")


@points(2)
def test_fully_masked_row(learner, ref, device, gen):
    """a query with no allowed key gets zero weights and a zero output, not NaN"""
    q, k, v, rel_k, rel_v = qkv(gen, device, 2, 2, 4, 6, 8)
    mask = random_mask(gen, (4, 6), "cpu")
    mask[:, 0] = True  # every other row keeps a key
    mask[1] = False  # query 1 may attend nothing
    mask = mask.to(device)
    what = describe(q, k, v, rel_k, rel_v, mask)
    out, weights = attention(learner, q, k, v, rel_k, rel_v, mask)
    want_out, want_weights = ref.relative_attention(q, k, v, rel_k, rel_v, mask)
    if weights.shape == want_weights.shape and out.shape == want_out.shape:
        w1, o1 = weights[..., 1, :].double(), out[..., 1, :].double()
        if torch.isnan(w1).any() or torch.isnan(o1).any():
            fail(f"{what}: query 1 has no allowed key and its weights and output are NaN (a softmax of "
                 "only -inf). Give such a row zero weights and a zero output: mask with a large finite "
                 "negative (torch.finfo(dtype).min) or zero the fully masked rows after the softmax")
        if (w1 != 0).any() or (o1 != 0).any():
            fail(f"{what}: query 1 has no allowed key, so its weights and output must be all zeros; yours "
                 f"have weights summing to {float(w1.sum(-1).max()):.3g} (a softmax over masked logits "
                 "spreads them uniformly): zero the masked weights after the softmax")
    assert_close(weights, want_weights, what=f"the weights of {what}")
    assert_close(out, want_out, what=f"the output of {what}")


@points(3)
def test_shift_invariance(learner, device, gen):
    """the same tokens, shifted later together behind masked keys, attend exactly as before"""
    length, pad, max_distance, d = 5, 4, 3, 8
    w_k = randn(gen, 2 * max_distance + 1, d, device=device)
    w_v = randn(gen, 2 * max_distance + 1, d, device=device)
    q, k, v, _, _ = qkv(gen, device, 2, 2, length, length, d)
    k0, v0 = randn(gen, 2, 2, pad, d, device=device), randn(gen, 2, 2, pad, d, device=device)
    short = checked_index(learner, length, length, max_distance).to(device)
    long = checked_index(learner, length, pad + length, max_distance).to(device)
    mask = torch.cat((torch.zeros(pad, dtype=torch.bool), torch.ones(length, dtype=torch.bool)))
    mask = mask.expand(length, pad + length).contiguous().to(device)
    out, weights = attention(learner, q, k, v, w_k[short], w_v[short])
    out_l, weights_l = attention(learner, q, torch.cat((k0, k), -2), torch.cat((v0, v), -2),
                                 w_k[long], w_v[long], mask)
    for got, want, name in ((weights_l[..., pad:], weights, "weights on the real keys"),
                            (out_l, out, "output")):
        if got.shape != want.shape or got.dtype != want.dtype or \
                not torch.allclose(got.cpu().double(), want.cpu().double(), rtol=1e-5, atol=1e-5):
            fail(f"{length} queries and keys attend with tables from relative_position_index({length}, "
                 f"{length}, {max_distance}); the same tokens placed {pad} positions later, behind {pad} "
                 f"masked keys (tables from relative_position_index({length}, {pad + length}, "
                 f"{max_distance})), give a different {name}. Relative attention sees only the distances "
                 "j - q_pos(i): check that the queries sit at the last len_q positions and that masked "
                 "keys get no weight")
    if weights_l.shape[-1] == pad + length and (weights_l[..., :pad] != 0).any():
        fail("masked keys got non-zero weights: mask the logits before the softmax")


@points(1)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64],
                         ids=lambda d: str(d).removeprefix("torch."))
def test_attention_dtype(learner, ref, device, gen, dtype):
    """out and weights keep q's dtype (float16, bfloat16, float64)"""
    q, k, v, rel_k, rel_v = qkv(gen, device, 2, 2, 5, 5, 16, dtype=dtype)
    mask = random_mask(gen, (5, 5), device)
    name = str(dtype).removeprefix("torch.")
    what = f"{describe(q, k, v, rel_k, rel_v, mask)} with {name} inputs"
    out, weights = attention(learner, q, k, v, rel_k, rel_v, mask)
    for t, part in ((out, "output"), (weights, "weights")):
        if t.dtype != dtype:
            fail(f"the {part} of {what} is {str(t.dtype).removeprefix('torch.')}; return q's dtype "
                 "(a softmax in float32 is fine, cast the result back)")
    if dtype == torch.float64:
        want_out, want_weights = ref.relative_attention(q, k, v, rel_k, rel_v, mask)
        rtol, atol, extra_out, extra_w = 1.3e-6, 1e-5, 0.0, 0.0  # float32's tolerance: no more is asked
    else:
        # half inputs: graded against the float32 reference rounded to the dtype; the reference in
        # half precision rounds at other steps, and any order within twice its distance is accepted
        f32 = [t.float() for t in (q, k, v, rel_k, rel_v)]
        want_out, want_weights = (t.to(dtype) for t in ref.relative_attention(*f32, mask))
        half_out, half_weights = ref.relative_attention(q, k, v, rel_k, rel_v, mask)
        rtol, atol = None, None
        extra_out = 2 * float((half_out.double() - want_out.double()).abs().max())
        extra_w = 2 * float((half_weights.double() - want_weights.double()).abs().max())
    assert_close(weights, want_weights, what=f"the weights of {what}", rtol=rtol, atol=atol, atol_extra=extra_w)
    assert_close(out, want_out, what=f"the output of {what}", rtol=rtol, atol=atol, atol_extra=extra_out)


# -- T5 buckets ---------------------------------------------------------------------------------

T5_CONFIGS = [(True, 32, 128), (False, 32, 128), (True, 8, 20), (False, 16, 64), (True, 64, 1000)]


def t5_id(config):
    bidirectional, num_buckets, max_distance = config
    return f"{'bi' if bidirectional else 'uni'}-{num_buckets}-{max_distance}"


def buckets(impl, distances, bidirectional, num_buckets, max_distance):
    what = (f"t5_relative_position_bucket(distances, bidirectional={bidirectional}, "
            f"num_buckets={num_buckets}, max_distance={max_distance})")
    out = impl.t5_relative_position_bucket(distances, bidirectional, num_buckets, max_distance)
    check_tensor(out, what)
    return out, what


@points(2)
@pytest.mark.parametrize("config", T5_CONFIGS, ids=t5_id)
def test_t5_buckets(learner, ref, device, gen, config):
    """T5 buckets of key - query distances up to ±1000, as Hugging Face computes them"""
    sweep = torch.arange(-1000, 1001, device=device)
    query = torch.randint(0, 1000, (11, 1), generator=gen)
    key = torch.randint(0, 1000, (1, 13), generator=gen)
    matrix = (key - query).to(device)  # [Lq, Lk] memory_position - context_position
    for distances, shape in ((sweep, "every distance -1000..1000"), (matrix, "a [11, 13] matrix of distances")):
        got, what = buckets(learner, distances, *config)
        want, _ = buckets(ref, distances, *config)
        if device != "cpu" and got.shape == want.shape and got.dtype == want.dtype:
            # a float32 log on the GPU may round a bucket edge (an exact integer) the other way:
            # the CPU's bucket is accepted too
            on_cpu, _ = buckets(ref, distances.cpu(), *config)
            want = torch.where(got.cpu() == on_cpu, on_cpu, want.cpu()).to(want.device)
        assert_close(got, want, what=f"{what} for {shape}")


@points(2)
def test_t5_key_minus_query(learner, ref):
    """T5 buckets are of key minus query: keys after the query use the upper half"""
    distances = torch.arange(-20, 21)
    got, what = buckets(learner, distances, True, 32, 128)
    want, _ = buckets(ref, distances, True, 32, 128)
    if close(got, ref.t5_relative_position_bucket(-distances, True, 32, 128)):
        fail(f"{what} puts keys after the query (distance > 0) in the lower half and keys before it in "
             "the upper half: relative_position is memory_position - query_position (key minus query), "
             "and n > 0 takes buckets num_buckets // 2 and up")
    assert_close(got, want, what=f"{what} for distances -20..20")


@points(2)
def test_t5_decoder_future_is_zero(learner, ref):
    """bidirectional=False: keys after the query fall in bucket 0, like distance 0"""
    distances = torch.arange(-300, 301)
    got, what = buckets(learner, distances, False, 32, 128)
    want, _ = buckets(ref, distances, False, 32, 128)
    if got.shape == distances.shape and not got.is_floating_point() and (got[301:] != 0).any():
        n = int(distances[301:][got[301:].cpu() != 0][0])
        fail(f"{what} gives distance +{n} bucket {int(got[distances == n])}; a decoder never sees later "
             "keys, so every distance n > 0 counts as 0: n = -min(n, 0), bucket 0")
    assert_close(got, want, what=f"{what} for distances -300..300")


@points(2)
@pytest.mark.parametrize("config", T5_CONFIGS[:3], ids=t5_id)
def test_t5_buckets_in_range(learner, config):
    """T5 buckets lie in [0, num_buckets) and grow with |distance| on each side"""
    bidirectional, num_buckets, max_distance = config
    distances = torch.arange(-3000, 3001)
    got, what = buckets(learner, distances, *config)
    if got.shape != distances.shape:
        fail(f"{what} has shape {list(got.shape)}, expected the distances' shape {list(distances.shape)}")
    if got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
        fail(f"{what} has dtype {got.dtype}; buckets index an embedding, so they must be integers (torch.long)")
    got = got.cpu().long()
    bad = (got < 0) | (got >= num_buckets)
    if bad.any():
        n = int(distances[bad][0])
        if bidirectional and int(got[distances == 1]) == num_buckets + 1:
            hint = ("; bidirectional mode gives each direction num_buckets // 2 buckets: halve num_buckets "
                    "first, and keys after the query start at that half")
        else:
            hint = "; distances at or beyond max_distance share the last bucket: cap with min(..., num_buckets - 1)"
        fail(f"{what} gives distance {n} bucket {int(got[distances == n])}, outside 0..{num_buckets - 1}{hint}")
    if int(got[distances == 0]) != 0:
        fail(f"{what} gives distance 0 bucket {int(got[distances == 0])}, expected 0")
    half = num_buckets // 2
    past = got[distances <= 0].flip(0)  # distances 0, -1, -2, ...
    if bidirectional:
        if (past >= half).any():
            n = -int(torch.nonzero(past >= half)[0])
            fail(f"{what} gives distance {n} (a key before the query) bucket {int(got[distances == n])}; "
                 f"in bidirectional mode those stay in the lower half 0..{half - 1} (cap each half's log "
                 f"buckets at num_buckets // 2 - 1)")
        future = got[distances > 0]
        if (future < half).any():
            n = int(torch.nonzero(future < half)[0]) + 1
            fail(f"{what} gives distance +{n} (a key after the query) bucket {int(got[distances == n])}; "
                 f"in bidirectional mode keys after the query use the upper half {half}..{num_buckets - 1}")
        sides = ((past, "before"), (future, "after"))
    else:
        sides = ((past, "before"),)
    for side, where in sides:
        drops = side[1:] < side[:-1]
        if drops.any():
            i = int(torch.nonzero(drops)[0])
            fail(f"{what}: for keys {where} the query the bucket drops from {int(side[i])} to "
                 f"{int(side[i + 1])} as |distance| grows from {i + (where == 'after')} to "
                 f"{i + 1 + (where == 'after')}; buckets must grow with |distance| (exact, then log-spaced)")


# -- bad arguments ----------------------------------------------------------------------------

def _attention_call(rel_k_shape, rel_v_shape=None):
    q = k = v = torch.zeros(1, 2, 3, 4)
    rel_v = None if rel_v_shape is None else torch.zeros(*rel_v_shape)
    return lambda m: m.relative_attention(q, k, v, torch.zeros(*rel_k_shape), rel_v)


BAD = {
    "negative-max-distance": ("relative_position_index(3, 3, -1)",
                              lambda m: m.relative_position_index(3, 3, -1)),
    "negative-len-q": ("relative_position_index(-1, 3, 2)", lambda m: m.relative_position_index(-1, 3, 2)),
    "module-negative-max-distance": (
        "RelativePositionEmbedding(4, -1)",
        lambda m: m.probe("module", cls="RelativePositionEmbedding", args=(4, -1), inputs=(2, 2))),
    "rel-k-width": ("relative_attention with q [1, 2, 3, 4] and rel_k [3, 3, 5]", _attention_call((3, 3, 5))),
    "rel-k-length": ("relative_attention with k [1, 2, 3, 4] and rel_k [3, 4, 4]", _attention_call((3, 4, 4))),
    "rel-v-shape": ("relative_attention with v [1, 2, 3, 4] and rel_v [3, 3, 5]",
                    _attention_call((3, 3, 4), (3, 3, 5))),
    "t5-float-distances": ("t5_relative_position_bucket(a float tensor)",
                           lambda m: m.t5_relative_position_bucket(torch.tensor([1.0, -2.0]))),
}


@points(1)
@pytest.mark.parametrize("bad", list(BAD))
def test_bad_arguments(learner, bad):
    """a negative max_distance or length, tables of the wrong shape, float T5 distances raise ValueError"""
    what, make = BAD[bad]
    expect_error(lambda: make(learner), "ValueError", what)


@points(1)
def test_efficiency(learner, ref):
    """runs within 20x of the reference's time on a long sequence"""
    assert_close(index(learner, 5, 7, 2), index(ref, 5, 7, 2), what="relative_position_index(5, 7, 2) (the large input is timed only once a small one is right)")
    assert_fast(learner, "relative_position_index(1024, 1024, 64)", attr="relative_position_index",
                args=(1024, 1024, 64))
