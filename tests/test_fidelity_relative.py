"""Fidelity of solutions/relative.py against real relative-position code (REFERENCES.md 3a, 3b).

References, none of them written from the solution:
  * Hugging Face T5: `T5Attention._relative_position_bucket` and `T5Attention.compute_bias`
    (tiny T5Config, random weights);
  * tensor2tensor's Shaw et al. attention (`common_attention.py`:
    `_generate_relative_positions_matrix`, `_generate_relative_positions_embeddings`,
    `_relative_attention_inner`, `dot_product_attention_relative` with `multihead_attention`'s
    pre-scaled q), re-stated below in torch line by line, because tensor2tensor needs
    TensorFlow 1.

transformers is imported at module level on purpose: without it these tests must fail,
not skip. Nothing is downloaded.

Largest max-abs differences measured over every case below (torch 2.13.0+cpu,
transformers 5.23.0); run with -s to print the table of the current run:

    function                      reference                               dtype      max |diff|
    t5_relative_position_bucket   HF T5 _relative_position_bucket         int64      0 (exact)
    t5 buckets -> bias            HF T5 compute_bias (with a cache)       float32    0 (exact)
    relative_position_index       tensor2tensor positions matrix          int64      0 (exact)
    RelativePositionEmbedding     tensor2tensor gather of the table       float32    0 (exact)
    relative_attention weights    tensor2tensor, float32                  float32    1.2e-07
    relative_attention out        tensor2tensor, float32                  float32    4.8e-07
    relative_attention out        tensor2tensor, zero table (rel_v=None)  float32    3.6e-07
    relative_attention weights    tensor2tensor in float32, half inputs   bf16/fp16  7.0e-03 / 6.2e-04
    relative_attention out        tensor2tensor in float32, half inputs   bf16/fp16  2.6e-02 / 2.2e-03

(half inputs: at most 4% of the worst-case rounding bound stated in that test)
"""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import T5Config
from transformers.models.t5.modeling_t5 import T5Attention

from posgrade.solutions import relative

hf_t5_bucket = T5Attention._relative_position_bucket

MAX_DIFF = {}  # (function, reference, dtype) -> largest max-abs difference seen in this run


def max_abs(a, b):
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def record(function, reference, dtype, ours, ref):
    """max |ours - ref|, remembered per (function, reference, dtype) for the summary."""
    diff = max_abs(ours, ref)
    key = (function, reference, str(dtype).replace("torch.", ""))
    MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), float(diff))
    return float(diff)


@pytest.fixture(scope="module", autouse=True)
def _print_max_diffs():
    yield
    print("\nlargest max-abs differences, solutions/relative.py vs reference:")
    for (function, reference, dtype), diff in sorted(MAX_DIFF.items()):
        print(f"  {function:28s} {reference:40s} {dtype:9s} {diff:.3e}")




# ------------------------------------------------- tensor2tensor, re-stated from REFERENCES 3a


def t2t_relative_positions_matrix(length_q, length_k, max_relative_position, cache=False):
    """tensor2tensor common_attention._generate_relative_positions_matrix, in torch."""
    if not cache:
        if length_q == length_k:
            range_vec_q = range_vec_k = torch.arange(length_q)
        else:
            range_vec_k = torch.arange(length_k)
            range_vec_q = range_vec_k[-length_q:]
        distance_mat = range_vec_k[None, :] - range_vec_q[:, None]
    else:
        distance_mat = torch.arange(-length_k + 1, 1, 1)[None, :]
    distance_mat_clipped = torch.clamp(distance_mat, -max_relative_position, max_relative_position)
    # Shift values to be >= 0. Each integer still uniquely identifies a relative position difference.
    return distance_mat_clipped + max_relative_position


def t2t_relative_positions_embeddings(length_q, length_k, embeddings_table, max_relative_position, cache=False):
    """tensor2tensor _generate_relative_positions_embeddings: tf.gather(table, matrix)."""
    relative_positions_matrix = t2t_relative_positions_matrix(length_q, length_k, max_relative_position, cache)
    return embeddings_table[relative_positions_matrix]


def t2t_relative_attention_inner(x, y, z, transpose):
    """tensor2tensor _relative_attention_inner: x y^T + x z^T, batched over the query axis."""
    batch_size, heads, length = x.shape[0], x.shape[1], x.shape[2]
    # xy_matmul is [batch_size, heads, length or 1, length or depth]
    xy_matmul = x @ (y.transpose(-2, -1) if transpose else y)
    # x_t is [length or 1, batch_size, heads, length or depth]
    x_t = x.permute(2, 0, 1, 3)
    # x_t_r is [length or 1, batch_size * heads, length or depth]
    x_t_r = x_t.reshape(length, heads * batch_size, -1)
    # x_tz_matmul is [length or 1, batch_size * heads, length or depth]
    x_tz_matmul = x_t_r @ (z.transpose(-2, -1) if transpose else z)
    # x_tz_matmul_r is [length or 1, batch_size, heads, length or depth]
    x_tz_matmul_r = x_tz_matmul.reshape(length, batch_size, heads, -1)
    # x_tz_matmul_r_t is [batch_size, heads, length or 1, length or depth]
    x_tz_matmul_r_t = x_tz_matmul_r.permute(1, 2, 0, 3)
    return xy_matmul + x_tz_matmul_r_t


def t2t_relative_attention(q, k, v, relations_keys, relations_values, bias=None):
    """multihead_attention's `q *= depth ** -0.5`, then dot_product_attention_relative."""
    q = q * q.shape[-1] ** -0.5
    logits = t2t_relative_attention_inner(q, k, relations_keys, True)
    if bias is not None:
        logits += bias
    weights = torch.softmax(logits, dim=-1)
    return t2t_relative_attention_inner(weights, v, relations_values, False), weights


def t2t_bias_from_mask(mask):
    """tensor2tensor's additive mask: -1e9 where attention is not allowed."""
    return (~mask).float() * -1e9


# ------------------------------------------------------------------------ T5 buckets

T5_CONFIGS = [(32, 128), (64, 256), (16, 64), (8, 20), (33, 100), (4, 3), (128, 1000)]


@pytest.mark.parametrize("num_buckets,max_distance", T5_CONFIGS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_bucket_matches_hf(bidirectional, num_buckets, max_distance):
    distances = torch.arange(-1000, 1001)  # key - query, both directions, far past max_distance
    ours = relative.t5_relative_position_bucket(distances, bidirectional, num_buckets, max_distance)
    ref = hf_t5_bucket(distances, bidirectional, num_buckets, max_distance)
    assert ours.dtype == torch.long and ours.shape == distances.shape
    # integers, and the same float32 log expression: must be identical (one bucket off at a
    # bucket edge would change which learned bias a pair gets)
    diff = record("t5_relative_position_bucket", "HF T5 _relative_position_bucket", torch.int64, ours, ref)
    assert diff == 0
    assert int(ours.min()) >= 0 and int(ours.max()) <= num_buckets - 1


def test_t5_bucket_matrix_int32_and_documented_values():
    # a [q, k] matrix of memory - context positions, in int32, as a caller might build it
    rel = (torch.arange(300)[None, :] - torch.arange(200)[:, None] - 50).to(torch.int32)
    for bidirectional in (True, False):
        ours = relative.t5_relative_position_bucket(rel, bidirectional)
        ref = hf_t5_bucket(rel, bidirectional=bidirectional)
        assert ours.shape == rel.shape and torch.equal(ours, ref.long())
    # REFERENCES 3b (measured there with HF): (32, 128) bidirectional
    values = relative.t5_relative_position_bucket(torch.tensor([-1, 1, -8, 8, -128, 128, -1000, 1000, 0]))
    assert values.tolist() == [1, 17, 8, 24, 15, 31, 15, 31, 0]
    # decoder: the future collapses to distance 0, bucket 0
    values = relative.t5_relative_position_bucket(torch.tensor([5, 1, 0, -1, -200]), bidirectional=False)
    assert values.tolist() == [0, 0, 0, 1, 31]


@pytest.mark.parametrize("is_decoder", [False, True])
@pytest.mark.parametrize("len_q,len_k", [(1, 1), (6, 6), (1, 9), (3, 300)])
def test_t5_compute_bias_with_cache_alignment(is_decoder, len_q, len_k):
    # HF T5 v5 places the queries at past_seen_tokens + arange(q_len); with a cache of
    # len_k - len_q tokens that is our q_pos(i) = len_k - len_q + i. Feeding our index
    # (unclipped: max_distance >= len_k) through our buckets must give T5's own bias.
    torch.manual_seed(0)
    config = T5Config(d_model=8, d_kv=4, num_heads=2, relative_attention_num_buckets=32,
                      relative_attention_max_distance=128, is_decoder=is_decoder)
    attn = T5Attention(config, has_relative_attention_bias=True, layer_idx=0)
    ref = attn.compute_bias(len_q, len_k, past_seen_tokens=len_k - len_q)  # [1, H, q, k]
    big = len_k  # no clipping: index - big = key - query
    rel = relative.relative_position_index(len_q, len_k, big) - big
    buckets = relative.t5_relative_position_bucket(rel, bidirectional=not is_decoder)
    ours = attn.relative_attention_bias.weight.detach()[buckets].permute(2, 0, 1)[None]
    diff = record("t5 buckets -> bias", "HF T5Attention.compute_bias", torch.float32, ours, ref)
    assert diff == 0  # a gather of the same table with the same integer indices


def test_t5_bucket_errors():
    with pytest.raises(ValueError, match="num_buckets"):
        relative.t5_relative_position_bucket(torch.arange(5), True, num_buckets=2)
    with pytest.raises(ValueError, match="max_distance"):
        relative.t5_relative_position_bucket(torch.arange(5), True, num_buckets=32, max_distance=8)
    with pytest.raises(ValueError, match="integer"):
        relative.t5_relative_position_bucket(torch.arange(5.0))


# ------------------------------------------------------------------------ Shaw index and table

SHAW_SHAPES = [(1, 1, 0), (4, 4, 2), (5, 9, 3), (1, 7, 4), (16, 16, 0), (7, 7, 100), (3, 40, 8), (64, 64, 16)]


@pytest.mark.parametrize("len_q,len_k,max_distance", SHAW_SHAPES)
def test_relative_position_index_matches_t2t(len_q, len_k, max_distance):
    ours = relative.relative_position_index(len_q, len_k, max_distance)
    ref = t2t_relative_positions_matrix(len_q, len_k, max_distance)
    assert ours.dtype == torch.long and ours.shape == (len_q, len_k)
    assert record("relative_position_index", "t2t positions matrix", torch.int64, ours, ref) == 0
    if len_q == 1:  # tensor2tensor's fast-decoding form: the one query is the last position
        ref_cache = t2t_relative_positions_matrix(len_q, len_k, max_distance, cache=True)
        assert torch.equal(ours, ref_cache)


def test_relative_position_index_docstring_example():
    expected = [[2, 3, 4, 4], [1, 2, 3, 4], [0, 1, 2, 3], [0, 0, 1, 2]]
    assert relative.relative_position_index(4, 4, 2).tolist() == expected
    assert relative.relative_position_index(2, 4, 2).tolist() == [[0, 1, 2, 3], [0, 0, 1, 2]]
    with pytest.raises(ValueError, match="max_distance"):
        relative.relative_position_index(4, 4, -1)


@pytest.mark.parametrize("len_q,len_k,max_distance", SHAW_SHAPES)
def test_relative_position_embedding_matches_t2t_gather(len_q, len_k, max_distance):
    torch.manual_seed(1)
    emb = relative.RelativePositionEmbedding(12, max_distance)
    assert [n for n, _ in emb.named_parameters()] == ["weight"]
    assert emb.weight.shape == (2 * max_distance + 1, 12)
    out = emb(len_q, len_k)
    ref = t2t_relative_positions_embeddings(len_q, len_k, emb.weight.detach(), max_distance)
    assert out.shape == (len_q, len_k, 12)
    assert record("RelativePositionEmbedding", "t2t gather of the table", torch.float32, out, ref) == 0
    out.sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0


def test_relative_position_embedding_init_is_glorot_uniform():
    # tf.get_variable's default initializer, which tensor2tensor's table uses, is
    # glorot_uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)), variance a^2 / 3
    torch.manual_seed(2)
    emb = relative.RelativePositionEmbedding(256, 200)  # [401, 256]
    a = math.sqrt(6.0 / (401 + 256))
    w = emb.weight.detach()
    assert w.abs().max() <= a
    assert w.abs().max() > 0.99 * a  # really uniform on the whole interval, not a narrower one
    # 102656 samples: the sample variance is within 2% of a^2/3 with overwhelming probability
    assert abs(w.var().item() / (a * a / 3) - 1) < 0.02


# ------------------------------------------------------------------------ Shaw attention

ATTN_CASES = [
    # B, H, Lq, Lk, d, dv, K
    (2, 3, 5, 5, 8, 8, 2),
    (1, 4, 3, 9, 16, 4, 3),  # fewer queries than keys: the last 3 positions
    (2, 2, 1, 7, 8, 8, 4),  # one decoding step
    (1, 2, 33, 33, 64, 64, 16),
    (2, 1, 16, 16, 2, 6, 0),
]


def attn_inputs(B, H, Lq, Lk, d, dv, K, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Lq, d, generator=g)
    k = torch.randn(B, H, Lk, d, generator=g)
    v = torch.randn(B, H, Lk, dv, generator=g)
    table_k = torch.randn(2 * K + 1, d, generator=g) * 0.5
    table_v = torch.randn(2 * K + 1, dv, generator=g) * 0.5
    rel_k = t2t_relative_positions_embeddings(Lq, Lk, table_k, K)  # [Lq, Lk, d]
    rel_v = t2t_relative_positions_embeddings(Lq, Lk, table_v, K)  # [Lq, Lk, dv]
    return [t.to(dtype) for t in (q, k, v, rel_k, rel_v)]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("case", ATTN_CASES)
def test_relative_attention_matches_t2t_float32(case, masked):
    q, k, v, rel_k, rel_v = attn_inputs(*case, torch.float32, seed=3)
    Lq, Lk = q.shape[-2], k.shape[-2]
    mask = None
    if masked:  # a causal mask (queries are the last positions) and one padded key per batch row
        q_pos = torch.arange(Lk - Lq, Lk)[:, None]
        mask = (torch.arange(Lk)[None, :] <= q_pos).expand(q.shape[0], 1, Lq, Lk).clone()  # [B, 1, Lq, Lk]
        if Lk > 1:
            mask[0, :, :, 0] = False  # batch row 0: key 0 is padding
        mask[:, :, :, Lk - Lq] |= True  # every query may see at least one key
    out, weights = relative.relative_attention(q, k, v, rel_k, rel_v, mask=mask)
    bias = None if mask is None else t2t_bias_from_mask(mask)
    ref_out, ref_w = t2t_relative_attention(q, k, v, rel_k, rel_v, bias)
    assert out.shape == ref_out.shape and weights.shape == ref_w.shape
    assert out.dtype == weights.dtype == torch.float32
    # tensor2tensor rounds q * d^-0.5 before the products and sums the two terms in another
    # order: logits agree to ~ d * 2^-24 * |q| |k| relative (|logit| < 10 here), so weights to
    # ~1e-6 and outputs (|v| + |rel_v| < 6) to a few 1e-6; 2e-5 leaves margin, and a real
    # mistake (sign, clip, missing term, scale) moves them by > 1e-2
    dw = record("relative_attention.weights", "t2t attention, float32", torch.float32, weights, ref_w)
    do = record("relative_attention.out", "t2t attention, float32", torch.float32, out, ref_out)
    assert dw <= 2e-5 and do <= 2e-5
    # without rel_v tensorflow has no switch: its value table would be all zeros
    out_nov, w_nov = relative.relative_attention(q, k, v, rel_k, None, mask=mask)
    ref_nov, _ = t2t_relative_attention(q, k, v, rel_k, torch.zeros_like(rel_v), bias)
    assert torch.equal(w_nov, weights)
    assert record("relative_attention.out, rel_v=None", "t2t, zero value table", torch.float32, out_nov, ref_nov) <= 2e-5


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", ATTN_CASES)
def test_relative_attention_half_matches_t2t_in_float32(case, dtype):
    q, k, v, rel_k, rel_v = attn_inputs(*case, dtype, seed=4)
    out, weights = relative.relative_attention(q, k, v, rel_k, rel_v)
    assert out.dtype == weights.dtype == dtype
    ref_out, ref_w = t2t_relative_attention(*(t.float() for t in (q, k, v, rel_k, rel_v)))
    eps = torch.finfo(dtype).eps
    # Reference: tensor2tensor in float32 on the same (exactly upcast) inputs. Ours rounds
    # the logits (|e| <= E) to dtype: absolute error <= ~2 eps E (the two products, the sum,
    # the scaling); a logit error delta changes a softmax weight by <= 2 delta relative, and
    # the weights are rounded again (eps/2). So |dw| <= (4 E + 1) eps and the output, a
    # weighted sum of |v + rel_v| <= S, is off by <= ((4 E + 1) eps + 2 eps) S.
    logits = t2t_relative_attention_inner(q.float() * q.shape[-1] ** -0.5, k.float(), rel_k.float(), True)
    E = logits.abs().max().item()
    S = (v.float().abs().amax() + rel_v.float().abs().amax()).item()
    dw = record("relative_attention.weights", "t2t in float32 (half inputs)", dtype, weights, ref_w)
    do = record("relative_attention.out", "t2t in float32 (half inputs)", dtype, out, ref_out)
    # (worst case; measured at most 4% of it)
    assert dw <= (4 * E + 1) * eps
    assert do <= (4 * E + 3) * eps * S


def test_fully_masked_row_is_zero_not_nan():
    q, k, v, rel_k, rel_v = attn_inputs(2, 2, 4, 6, 8, 8, 2, torch.float32, seed=5)
    q.requires_grad_(True)
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1] = False  # query 1 may attend nothing
    out, weights = relative.relative_attention(q, k, v, rel_k, rel_v, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.equal(weights[:, :, 1], torch.zeros_like(weights[:, :, 1]))
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    # the other rows are the t2t result
    ref_out, ref_w = t2t_relative_attention(q.detach(), k, v, rel_k, rel_v, t2t_bias_from_mask(mask))
    keep = [0, 2, 3]
    assert max_abs(out[:, :, keep].detach(), ref_out[:, :, keep]) <= 2e-5
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


class _LargestAllocation(TorchDispatchMode):
    """Records the largest storage (in elements) of any tensor an aten op returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.untyped_storage().nbytes() // t.element_size())
        return out


def test_relative_attention_never_builds_the_5d_tensor():
    # DESIGN: use einsum over [B,H,Lq,d] x [Lq,Lk,d]; never materialise [B,H,Lq,Lk,d]
    B, H, L, d = 2, 3, 24, 32
    q, k, v, rel_k, rel_v = attn_inputs(B, H, L, L, d, d, 4, torch.float32, seed=6)
    with _LargestAllocation() as mode:
        relative.relative_attention(q, k, v, rel_k, rel_v)
    five_d = B * H * L * L * d  # 110592 elements; the inputs rel_k, rel_v hold L*L*d = 18432
    assert mode.largest < five_d // 4, f"an op returned a tensor of {mode.largest} elements"


def test_relative_attention_errors_and_no_inplace():
    q, k, v, rel_k, rel_v = attn_inputs(1, 2, 3, 5, 8, 4, 2, torch.float32, seed=7)
    copies = [t.clone() for t in (q, k, v, rel_k, rel_v)]
    relative.relative_attention(q, k, v, rel_k, rel_v, mask=torch.ones(3, 5, dtype=torch.bool))
    assert all(torch.equal(a, b) for a, b in zip(copies, (q, k, v, rel_k, rel_v)))
    with pytest.raises(ValueError, match="rel_k"):
        relative.relative_attention(q, k, v, rel_k.transpose(0, 1), rel_v)
    with pytest.raises(ValueError, match="rel_v"):
        relative.relative_attention(q, k, v, rel_k, rel_k)
    with pytest.raises(ValueError, match="mask"):
        relative.relative_attention(q, k, v, rel_k, rel_v, mask=torch.ones(3, 5))
    with pytest.raises(ValueError, match="max_distance"):
        relative.RelativePositionEmbedding(8, -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_keeps_device_and_matches_cpu():
    q, k, v, rel_k, rel_v = attn_inputs(2, 3, 5, 9, 16, 16, 3, torch.float32, seed=8)
    out, w = relative.relative_attention(*(t.cuda() for t in (q, k, v, rel_k, rel_v)))
    ref_out, ref_w = t2t_relative_attention(q, k, v, rel_k, rel_v)
    assert out.is_cuda and w.is_cuda
    assert max_abs(out.cpu(), ref_out) <= 1e-4  # TF32/cuBLAS summation order, |out| < 6
    assert relative.t5_relative_position_bucket(torch.arange(-300, 300, device="cuda")).is_cuda
    emb = relative.RelativePositionEmbedding(8, 3).cuda()
    assert emb(4, 6).is_cuda
