"""Reference fidelity of solutions/attention.py: it must compute what torch's own attention
and Hugging Face's code compute, wherever those are defined.

  * scaled_dot_product_attention == torch.nn.functional.scaled_dot_product_attention on the CPU
    (no mask, bool masks, float bias, bias + mask, causal via is_causal for Lq == Lk and via
    torch.nn.attention.bias.causal_lower_right for Lq != Lk), in float64, float32, bfloat16
    and float16; fully masked rows give zeros, as torch 2.13's SDPA does; gradients agree.
  * the weights == Hugging Face `eager_attention_forward` (LLaMA) with its additive mask.
  * causal_mask == causal_lower_right, i.e. tril(ones(Lq, Lk), diagonal=Lk - Lq).
  * MultiHeadAttention(position="none") == nn.MultiheadAttention with the same weights
    (whose bool masks mean True = ignore: the tests invert ours); "sinusoidal"/"learned" ==
    nn.MultiheadAttention on x plus the table; "rope" == Hugging Face GPT-J's interleaved
    rotary embedding followed by torch's SDPA.

transformers is imported at the top on purpose, with no importorskip: without it these tests
must fail, not be skipped. Nothing is downloaded; every HF object is built locally.

Largest max-abs difference from torch's own SDPA, measured with torch 2.13.0 on the CPU over
every case here: float64 8.9e-16, float32 6.6e-7, bfloat16 1.6e-2 (one bf16 ulp at |out| in
[2, 4)), float16 2.0e-3 (one fp16 ulp in [2, 4)). pytest -s prints the values of the
current run.
"""

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers  # noqa: F401  (a hard requirement of this file, see above)
from torch.nn.attention.bias import causal_lower_right
from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb as gptj_apply_rotary_pos_emb
from transformers.models.gptj.modeling_gptj import create_sinusoidal_positions
from transformers.models.llama.modeling_llama import eager_attention_forward

from posgrade.solutions.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

# Tolerances for comparing with torch (assert_close: |ours - ref| <= atol + rtol * |ref|).
# Both sides compute the same sums in a different order (torch's CPU kernel is blocked, with
# an online softmax), so the difference is a few roundings of the output's own precision:
#   float64: eps 2.2e-16; outputs are averages of N(0, 1) values (|out| < 5), ~10 ulps.
#   float32: eps 1.2e-7; a handful of ulps at |out| ~ 4 is ~1e-6.
#   bfloat16: 8 significant bits (ulp 2^-7 at 1, 2^-6 in [2, 4)); we round the weights to
#     bf16 before multiplying v (as HF eager does), torch keeps them in float32, so up to
#     about 2 ulps of |out|: rtol 2^-6, atol 2^-7 for outputs near 0.
#   float16: 11 significant bits, same reasoning: rtol 2^-9, atol 2^-10.
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=2e-6, rtol=2e-6),
    torch.bfloat16: dict(atol=2.0**-7, rtol=2.0**-6),
    torch.float16: dict(atol=2.0**-10, rtol=2.0**-9),
}
DTYPES = list(TOL)

# the largest |ours - torch SDPA| seen per dtype; printed at the end of the module (pytest -s)
MAX_DIFF = {dtype: 0.0 for dtype in DTYPES}


@pytest.fixture(scope="module", autouse=True)
def _report_max_diff():
    yield
    print("\nlargest max-abs difference vs torch's scaled_dot_product_attention:")
    for dtype, diff in MAX_DIFF.items():
        print(f"  {str(dtype):16s} {diff:.3e}")


def check_vs_torch(ours, ref, dtype):
    """Assert ours == ref within TOL[dtype] and record the difference."""
    assert ours.dtype == ref.dtype == dtype
    assert ours.shape == ref.shape
    assert not torch.isnan(ours).any()
    diff = (ours.double() - ref.double()).abs().max().item() if ref.numel() else 0.0
    MAX_DIFF[dtype] = max(MAX_DIFF[dtype], diff)
    torch.testing.assert_close(ours, ref, **TOL[dtype])


def randn(*shape, dtype=torch.float32, seed=0):
    # draw in float32 and cast, so every dtype sees the same values
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def random_mask(*shape, seed=0, p_keep=0.6):
    """A random bool mask (True = may attend) in which every row keeps at least one key."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(*shape, generator=g) < p_keep
    mask[..., 0] = True
    return mask


# (B, H, Lq, Lk, d, dv)
SHAPES = [(2, 3, 5, 5, 8, 8), (1, 4, 7, 13, 16, 12), (3, 2, 1, 9, 32, 32), (2, 1, 6, 6, 4, 5)]


def qkv(shape, dtype, seed=0):
    B, H, Lq, Lk, d, dv = shape
    return (
        randn(B, H, Lq, d, dtype=dtype, seed=seed),
        randn(B, H, Lk, d, dtype=dtype, seed=seed + 1),
        randn(B, H, Lk, dv, dtype=dtype, seed=seed + 2),
    )


# --------------------------------------------------------------------------------------------
# scaled_dot_product_attention vs torch.nn.functional.scaled_dot_product_attention


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_no_mask_matches_torch_sdpa(shape, dtype):
    q, k, v = qkv(shape, dtype)
    out, weights = scaled_dot_product_attention(q, k, v)
    check_vs_torch(out, F.scaled_dot_product_attention(q, k, v), dtype)
    assert weights.shape == shape[:3] + (shape[3],) and weights.dtype == dtype
    # the weights are a distribution over keys (softmax over the last axis, not the queries)
    torch.testing.assert_close(weights.double().sum(-1), torch.ones(shape[:3], dtype=torch.float64), **TOL[dtype])


def test_unbatched_and_broadcast_leading_dims_match_torch_sdpa():
    q, k, v = randn(6, 8, seed=1), randn(9, 8, seed=2), randn(9, 3, seed=3)  # no leading dims
    check_vs_torch(scaled_dot_product_attention(q, k, v)[0], F.scaled_dot_product_attention(q, k, v), torch.float32)
    q4 = randn(2, 3, 6, 8, seed=4)  # k, v [1, 1, Lk, d] broadcast over batch and heads
    k4, v4 = k[None, None], v[None, None]
    check_vs_torch(
        scaled_dot_product_attention(q4, k4, v4)[0], F.scaled_dot_product_attention(q4, k4, v4), torch.float32
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("mask_kind", ["full", "per_batch", "key_padding"])
def test_bool_mask_matches_torch_sdpa(shape, dtype, mask_kind):
    B, H, Lq, Lk = shape[:4]
    q, k, v = qkv(shape, dtype, seed=10)
    mask_shape = {"full": (Lq, Lk), "per_batch": (B, 1, Lq, Lk), "key_padding": (B, 1, 1, Lk)}[mask_kind]
    mask = random_mask(*mask_shape, seed=11)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    check_vs_torch(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), dtype)
    assert (weights[~mask.expand_as(weights)] == 0).all()  # masked keys get exactly zero weight


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float_bias_matches_torch_float_attn_mask(shape, dtype):
    B, H, Lq, Lk = shape[:4]
    q, k, v = qkv(shape, dtype, seed=20)
    bias = (2.0 * randn(1, H, Lq, Lk, seed=21)).to(dtype)  # SDPA adds a float attn_mask after scaling
    out, _ = scaled_dot_product_attention(q, k, v, bias=bias)
    check_vs_torch(out, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_bias_and_mask_match_torch_combined_float_mask(shape, dtype):
    B, H, Lq, Lk = shape[:4]
    q, k, v = qkv(shape, dtype, seed=30)
    bias = randn(H, Lq, Lk, seed=31).to(dtype)
    mask = random_mask(B, 1, Lq, Lk, seed=32)
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask, bias=bias)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(~mask, float("-inf")))
    check_vs_torch(out, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("L", [1, 4, 9])
def test_causal_square_matches_torch_is_causal(L, dtype):
    q, k, v = qkv((2, 3, L, L, 8, 8), dtype, seed=40)
    out, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(L, L))
    check_vs_torch(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("Lq, Lk", [(1, 7), (3, 8), (5, 6)])
def test_causal_kv_cache_matches_torch_causal_lower_right(Lq, Lk, dtype):
    q, k, v = qkv((2, 3, Lq, Lk, 8, 8), dtype, seed=50)
    out, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(Lq, Lk))
    check_vs_torch(out, F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(Lq, Lk)), dtype)
    # torch's is_causal=True is top-left aligned: with a cache it really is a different mask
    top_left = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert (out.double() - top_left.double()).abs().max() > 1e-2


@pytest.mark.filterwarnings("ignore:Lower right causal bias will produce NaNs")
@pytest.mark.parametrize("Lq, Lk", [(0, 0), (0, 3), (1, 1), (1, 5), (4, 4), (3, 8), (6, 2)])
def test_causal_mask_equals_causal_lower_right(Lq, Lk):
    ours = causal_mask(Lq, Lk)
    assert ours.dtype == torch.bool and ours.shape == (Lq, Lk)
    assert torch.equal(ours, causal_lower_right(Lq, Lk)._materialize())
    assert torch.equal(ours, torch.ones(Lq, Lk, dtype=torch.bool).tril(diagonal=Lk - Lq))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fully_masked_rows_give_zeros_like_torch(dtype):
    B, H, Lq, Lk = 2, 2, 6, 5
    q, k, v = qkv((B, H, Lq, Lk, 8, 8), dtype, seed=60)
    mask = random_mask(B, 1, Lq, Lk, seed=61)
    mask[0, :, 2] = False  # query 2 of batch 0 may attend nothing
    mask[1, :, [0, 5]] = False
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert (ref[0, :, 2] == 0).all()  # torch 2.13's safe softmax: zeros, not NaN
    check_vs_torch(out, ref, dtype)
    assert (out[0, :, 2] == 0).all() and (weights[0, :, 2] == 0).all()
    assert (out[1, :, [0, 5]] == 0).all() and (weights[1, :, [0, 5]] == 0).all()
    # the same through a -inf float bias, torch's float-mask form
    bias = torch.zeros(B, 1, Lq, Lk, dtype=dtype).masked_fill(~mask, float("-inf"))
    out_bias, _ = scaled_dot_product_attention(q, k, v, bias=bias)
    check_vs_torch(out_bias, F.scaled_dot_product_attention(q, k, v, attn_mask=bias), dtype)


def test_fully_masked_rows_have_the_same_gradients_as_torch():
    # float64 so the comparison is tight: both sides differ only in summation order
    q, k, v = (t.requires_grad_() for t in qkv((1, 2, 5, 3, 4, 4), torch.float64, seed=70))
    mask = causal_mask(5, 3)  # Lq > Lk: the first two queries sit before every key
    out, _ = scaled_dot_product_attention(q, k, v, mask=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(5, 3))
    check_vs_torch(out, ref, torch.float64)
    upstream = randn(*out.shape, dtype=torch.float64, seed=71)
    ours_grads = torch.autograd.grad(out, (q, k, v), upstream)
    ref_grads = torch.autograd.grad(ref, (q, k, v), upstream)
    for ours_g, ref_g in zip(ours_grads, ref_grads):
        assert torch.isfinite(ours_g).all()
        torch.testing.assert_close(ours_g, ref_g, atol=1e-12, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# the weights vs Hugging Face LLaMA's eager attention (which returns them)


class _EagerModule(nn.Module):
    # eager_attention_forward reads these two attributes of the attention module
    num_key_value_groups = 1

    def __init__(self):
        super().__init__()
        self.eval()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_weights_match_hf_llama_eager_attention(dtype):
    B, H, Lq, Lk, d = 2, 4, 6, 6, 16
    q, k, v = qkv((B, H, Lq, Lk, d, d), dtype, seed=80)
    mask = random_mask(B, 1, Lq, Lk, seed=81) & causal_mask(Lq, Lk)
    # HF eager masks are additive, 0 / finfo.min (not -inf), in the input dtype
    hf_mask = torch.zeros(B, 1, Lq, Lk, dtype=dtype).masked_fill(~mask, torch.finfo(dtype).min)
    hf_out, hf_weights = eager_attention_forward(_EagerModule(), q, k, v, hf_mask, scaling=d**-0.5)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    # float32: same recipe, ulp-level. bf16: HF multiplies by the scale in bf16 (one more
    # rounding of the logits, ~2^-8 relative), so the weights may differ by about 2 bf16 ulps.
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=2.0**-8, rtol=2.0**-6)
    torch.testing.assert_close(weights, hf_weights, **tol)
    torch.testing.assert_close(out, hf_out.transpose(1, 2), **TOL[dtype])  # HF returns [B, L, H, d]


# --------------------------------------------------------------------------------------------
# MultiHeadAttention vs nn.MultiheadAttention with the same weights


def torch_mha_like(mha, dtype=torch.float32):
    """nn.MultiheadAttention holding mha's weights (it packs q, k, v into in_proj_weight)."""
    ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, dropout=mha.dropout, batch_first=True, dtype=dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.eval()


def make_mha(d_model, n_heads, dtype=torch.float32, seed=0, **kwargs):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(d_model, n_heads, **kwargs).to(dtype).eval()
    with torch.no_grad():  # non-zero biases, so a bias mix-up cannot hide
        for proj in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
            proj.bias.normal_(0.0, 0.1)
    return mha


# float64 compares at summation-order level; float32 modules chain 3 matmuls, ~1e-6.
MHA_TOL = {torch.float64: dict(atol=1e-12, rtol=1e-12), torch.float32: dict(atol=1e-5, rtol=1e-5)}


@pytest.mark.parametrize("dtype", list(MHA_TOL), ids=str)
@pytest.mark.parametrize("d_model, n_heads", [(32, 4), (24, 3), (16, 1)])
@pytest.mark.parametrize("mask_kind", ["none", "attn_mask", "key_padding", "causal", "causal_and_padding"])
def test_mha_none_matches_nn_multiheadattention(d_model, n_heads, mask_kind, dtype):
    B, L = 3, 7
    mha = make_mha(d_model, n_heads, dtype, seed=1)
    ref_mha = torch_mha_like(mha, dtype)
    x = randn(B, L, d_model, dtype=dtype, seed=90)
    pad = random_mask(B, L, seed=91)  # True = real token
    attn = random_mask(L, L, seed=92)
    # ours: True = may attend. nn.MultiheadAttention: True = IGNORE, so every mask is inverted.
    ours_kwargs, ref_kwargs = {}, {}
    if mask_kind == "attn_mask":
        ours_kwargs, ref_kwargs = dict(mask=attn), dict(attn_mask=~attn)
    elif mask_kind == "key_padding":
        ours_kwargs, ref_kwargs = dict(mask=pad[:, None, None, :]), dict(key_padding_mask=~pad)
    elif mask_kind == "causal":
        ours_kwargs, ref_kwargs = dict(causal=True), dict(attn_mask=~causal_mask(L, L))
    elif mask_kind == "causal_and_padding":
        ours_kwargs = dict(mask=pad[:, None, None, :], causal=True)
        ref_kwargs = dict(attn_mask=~causal_mask(L, L), key_padding_mask=~pad)
    with torch.no_grad():
        out = mha(x, **ours_kwargs)
        ref, _ = ref_mha(x, x, x, need_weights=False, **ref_kwargs)
    assert out.shape == (B, L, d_model) and out.dtype == dtype
    torch.testing.assert_close(out, ref, **MHA_TOL[dtype])


def test_mha_per_head_weights_match_nn_multiheadattention():
    B, L, D, H = 2, 6, 32, 4
    mha = make_mha(D, H, seed=2)
    ref_mha = torch_mha_like(mha)
    x = randn(B, L, D, seed=93)
    with torch.no_grad():
        _, ref_weights = ref_mha(x, x, x, attn_mask=~causal_mask(L, L), average_attn_weights=False)
        q = mha.q_proj(x).view(B, L, H, D // H).transpose(1, 2)  # head h = channels h*d:(h+1)*d
        k = mha.k_proj(x).view(B, L, H, D // H).transpose(1, 2)
        v = mha.v_proj(x).view(B, L, H, D // H).transpose(1, 2)
        _, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(L, L))
    torch.testing.assert_close(weights, ref_weights, atol=1e-6, rtol=1e-5)  # float32, one softmax


def test_mha_dropout_is_off_in_eval_like_nn_multiheadattention():
    B, L, D, H = 2, 8, 32, 4
    mha = make_mha(D, H, seed=3, dropout=0.5)
    ref_mha = torch_mha_like(mha)  # eval(): its dropout is off too
    x = randn(B, L, D, seed=94)
    with torch.no_grad():
        out1, out2 = mha(x, causal=True), mha(x, causal=True)
        ref, _ = ref_mha(x, x, x, attn_mask=~causal_mask(L, L), need_weights=False)
    assert torch.equal(out1, out2)  # deterministic in eval
    torch.testing.assert_close(out1, ref, **MHA_TOL[torch.float32])
    mha.train()
    with torch.no_grad():
        assert (mha(x, causal=True) - ref).abs().max() > 1e-3  # and really applied in training


@pytest.mark.parametrize("position", ["sinusoidal", "learned"])
def test_mha_absolute_positions_match_nn_multiheadattention_on_x_plus_table(position):
    B, L, D, H = 2, 9, 32, 4
    mha = make_mha(D, H, seed=4, position=position, max_len=64)
    ref_mha = torch_mha_like(mha)
    x = randn(B, L, D, seed=95)
    with torch.no_grad():
        x_pos = x + (mha.pos.table[:L] if position == "sinusoidal" else mha.pos.weight[:L])
        ref, _ = ref_mha(x_pos, x_pos, x_pos, attn_mask=~causal_mask(L, L), need_weights=False)
        out = mha(x, causal=True)
    torch.testing.assert_close(out, ref, **MHA_TOL[torch.float32])
    # the sinusoidal table is a non-persistent buffer: the state_dict keys are the projections only
    if position == "sinusoidal":
        assert not any(key.startswith("pos.") for key in mha.state_dict())
    else:
        assert "pos.weight" in mha.state_dict()


def test_mha_relative_with_zero_tables_matches_nn_multiheadattention():
    # with aK = aV = 0 Shaw et al.'s attention is plain attention: the composition adds nothing else
    B, L, D, H = 2, 7, 32, 4
    mha = make_mha(D, H, seed=5, position="relative", max_distance=3)
    with torch.no_grad():
        mha.rel_k.weight.zero_()
        mha.rel_v.weight.zero_()
    assert mha.rel_k.weight.shape == (2 * 3 + 1, D // H)  # head width, shared by the heads
    ref_mha = torch_mha_like(mha)
    x = randn(B, L, D, seed=96)
    with torch.no_grad():
        ref, _ = ref_mha(x, x, x, attn_mask=~causal_mask(L, L), need_weights=False)
        out = mha(x, causal=True)
    torch.testing.assert_close(out, ref, **MHA_TOL[torch.float32])


def test_mha_rope_matches_hf_gptj_rotary_then_torch_sdpa():
    # GPT-J rotates interleaved pairs (rotate_every_two) with base 10000, on [B, L, H, d]
    B, L, D, H = 2, 10, 32, 2
    d = D // H
    mha = make_mha(D, H, seed=6, position="rope")
    x = randn(B, L, D, seed=97)
    with torch.no_grad():
        sincos = create_sinusoidal_positions(L, d)[torch.arange(L)][None].expand(B, L, d)  # [B, L, d]
        sin, cos = torch.split(sincos, d // 2, dim=-1)
        q = gptj_apply_rotary_pos_emb(mha.q_proj(x).view(B, L, H, d), sin, cos).transpose(1, 2)
        k = gptj_apply_rotary_pos_emb(mha.k_proj(x).view(B, L, H, d), sin, cos).transpose(1, 2)
        v = mha.v_proj(x).view(B, L, H, d).transpose(1, 2)
        ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, L, d]
        ref = mha.out_proj(ref.transpose(1, 2).reshape(B, L, D))
        out = mha(x, causal=True)
    # float32; GPT-J's angles are float32 as ours, small positions: a few ulps
    torch.testing.assert_close(out, ref, **MHA_TOL[torch.float32])


def test_mha_errors():
    with pytest.raises(ValueError, match="none.*sinusoidal.*learned.*relative.*rope.*alibi"):
        MultiHeadAttention(32, 4, position="absolute")
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
