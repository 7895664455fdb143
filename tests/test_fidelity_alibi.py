"""Reference fidelity of solutions/alibi.py against Hugging Face's ALiBi code (BLOOM and MPT).

  * alibi_slopes(n) == BLOOM's `_get_alibi_slopes` and the slopes inside BLOOM's
    `build_alibi_tensor` and MPT's `build_mpt_alibi_tensor`, for n = 1 .. 64 (powers of two
    and the non-power-of-two rule), and the paper's n = 12 example.
  * The raw biases differ on purpose: BLOOM adds +m·j (a ramp over key positions, the same for
    every query row, padding-aware), ours adds -m·|q_pos(i) - j|. Under a causal mask the two
    differ by a per-row constant, which softmax ignores, so the attention probabilities agree:
    checked for Lq == Lk, for a KV cache (Lq < Lk), with left padding, and through a real
    BloomAttention layer against MultiHeadAttention(position="alibi") with the same weights.
  * Without a causal mask they must NOT agree (the ramp is not -m|i - j|).

transformers is imported at the top on purpose, with no importorskip: without it these tests
must fail, not be skipped. Nothing is downloaded; BLOOM is built from a small local config.
"""

import math

import pytest
import torch
import transformers  # noqa: F401  (a hard requirement of this file, see above)
from transformers.models.bloom.configuration_bloom import BloomConfig
from transformers.models.bloom.modeling_bloom import BloomAttention, _get_alibi_slopes, build_alibi_tensor
from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

from posgrade.solutions.alibi import alibi_bias, alibi_slopes
from posgrade.solutions.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention

HEADS = list(range(1, 65))

# Slopes: BLOOM rounds the base 2^(-8/c) to float32 and raises it to the h-th power in float32,
# so its relative error grows like h * 2^-24 (h <= 64: <= 3.8e-6); ours is rounded once.
# Measured for n = 1..128: 6.6e-7 relative, 6e-8 absolute.
SLOPE_TOL = dict(atol=0.0, rtol=4e-6)


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


@pytest.mark.parametrize("n_heads", HEADS)
def test_slopes_match_bloom_get_alibi_slopes(n_heads):
    ours = alibi_slopes(n_heads)
    assert ours.shape == (n_heads,) and ours.dtype == torch.float32
    torch.testing.assert_close(ours, _get_alibi_slopes(n_heads, torch.device("cpu")), **SLOPE_TOL)


@pytest.mark.parametrize("n_heads", HEADS)
def test_slopes_match_bloom_build_alibi_tensor(n_heads):
    # build_alibi_tensor gives slope_h * key_position, [B*H, 1, L]: position 1 holds the slope
    ramp = build_alibi_tensor(torch.ones(1, 3), n_heads, torch.float32)
    torch.testing.assert_close(alibi_slopes(n_heads), ramp[:, 0, 1], **SLOPE_TOL)


@pytest.mark.parametrize("n_heads", HEADS)
def test_slopes_match_mpt_build_mpt_alibi_tensor(n_heads):
    # MPT: slope_h * (j - (S - 1)), [H, 1, S]; position S - 2 holds -slope. MPT orders the
    # non-power-of-two slopes differently in code ([1::2] then [::2] of the next power of 2)
    # but gets the same sequence.
    ramp = build_mpt_alibi_tensor(n_heads, 2)
    torch.testing.assert_close(alibi_slopes(n_heads), -ramp[:, 0, 0], **SLOPE_TOL)


def test_slopes_paper_examples():
    # powers of two: 2^(-8h/n); n = 12: 2^-1..2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
    torch.testing.assert_close(alibi_slopes(8), 2.0 ** -torch.arange(1.0, 9.0), atol=0.0, rtol=0.0)
    expected_12 = [2.0**-e for e in (1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5)]
    torch.testing.assert_close(alibi_slopes(12), torch.tensor(expected_12), atol=0.0, rtol=2.0**-24)


def bloom_probs(q, k, ramp, mask):
    """BLOOM's attention probabilities: baddbmm(ramp, q, kᵀ, alpha=1/sqrt(d)), finfo.min mask."""
    B, H, Lq, d = q.shape
    Lk = k.shape[-2]
    scores = ramp.baddbmm(q.reshape(B * H, Lq, d), k.reshape(B * H, Lk, d).transpose(-1, -2), beta=1.0, alpha=d**-0.5)
    scores = scores.view(B, H, Lq, Lk).masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1, dtype=torch.float32)


# float32 probabilities in [0, 1]: the ramp and our bias differ by a per-row constant of
# size up to m * Lk (<= 0.5 * 40 = 20), so the logits carry absolute rounding of about
# 20 * 2^-24 ~ 1e-6 that the softmax passes on; 1e-6 absolute plus 1e-5 relative covers it.
PROB_TOL = dict(atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("n_heads", [1, 4, 6, 12, 16])
@pytest.mark.parametrize("Lq, Lk", [(9, 9), (1, 12), (4, 10), (40, 40)])
def test_probabilities_match_bloom_ramp_under_causal_mask(n_heads, Lq, Lk):
    B, d = 2, 8
    q, k, v = randn(B, n_heads, Lq, d, seed=1), randn(B, n_heads, Lk, d, seed=2), randn(B, n_heads, Lk, d, seed=3)
    mask = causal_mask(Lq, Lk)  # bottom-right: the Lq queries are the last positions
    _, weights = scaled_dot_product_attention(q, k, v, mask=mask, bias=alibi_bias(n_heads, Lq, Lk))
    ramp = build_alibi_tensor(torch.ones(B, Lk), n_heads, torch.float32)  # [B*H, 1, Lk]
    torch.testing.assert_close(weights, bloom_probs(q, k, ramp, mask), **PROB_TOL)


def test_probabilities_match_bloom_ramp_with_left_padding():
    # BLOOM counts positions from the first real token (cumsum(attention_mask) - 1); that only
    # shifts every real key by the row's pad count, a per-row constant again
    B, H, L, d = 3, 8, 11, 16
    q, k, v = randn(B, H, L, d, seed=4), randn(B, H, L, d, seed=5), randn(B, H, L, d, seed=6)
    attention_mask = torch.ones(B, L, dtype=torch.long)
    attention_mask[1, :3] = 0
    attention_mask[2, :7] = 0
    keep = attention_mask.bool()[:, None, None, :] & causal_mask(L, L)  # [B, 1, L, L]
    _, weights = scaled_dot_product_attention(q, k, v, mask=keep, bias=alibi_bias(H, L, L))
    ramp = build_alibi_tensor(attention_mask, H, torch.float32)
    probs = bloom_probs(q, k, ramp, keep)
    real = attention_mask.bool()  # pad queries: ours all-zero rows, BLOOM a uniform row
    torch.testing.assert_close(weights.transpose(1, 2)[real], probs.transpose(1, 2)[real], **PROB_TOL)
    assert (weights.transpose(1, 2)[~real] == 0).all()


def test_bidirectional_ramp_is_not_alibi():
    # the ramp trick needs the causal mask: without it, keys after the query are rewarded
    H, L, d = 4, 10, 8
    q, k, v = randn(1, H, L, d, seed=7), randn(1, H, L, d, seed=8), randn(1, H, L, d, seed=9)
    _, weights = scaled_dot_product_attention(q, k, v, bias=alibi_bias(H, L, L))
    ramp = build_alibi_tensor(torch.ones(1, L), H, torch.float32)
    full = torch.ones(L, L, dtype=torch.bool)
    assert (weights - bloom_probs(q, k, ramp, full)).abs().max() > 1e-2


def bloom_attention_and_copy(d_model, n_heads, seed=0):
    """A BloomAttention layer and a MultiHeadAttention(position="alibi") with the same weights."""
    torch.manual_seed(seed)
    config = BloomConfig(hidden_size=d_model, n_head=n_heads, attention_dropout=0.0, hidden_dropout=0.0)
    bloom = BloomAttention(config, layer_idx=0).eval()
    with torch.no_grad():
        bloom.query_key_value.bias.normal_(0.0, 0.1)
        bloom.dense.bias.normal_(0.0, 0.1)
    ours = MultiHeadAttention(d_model, n_heads, position="alibi").eval()
    d = d_model // n_heads
    # BLOOM's fused layout is per head: [H, (q, k, v), d] rows of query_key_value
    w = bloom.query_key_value.weight.detach().view(n_heads, 3, d, d_model)
    b = bloom.query_key_value.bias.detach().view(n_heads, 3, d)
    with torch.no_grad():
        for i, proj in enumerate((ours.q_proj, ours.k_proj, ours.v_proj)):
            proj.weight.copy_(w[:, i].reshape(d_model, d_model))
            proj.bias.copy_(b[:, i].reshape(d_model))
        ours.out_proj.weight.copy_(bloom.dense.weight)
        ours.out_proj.bias.copy_(bloom.dense.bias)
    return bloom, ours


@pytest.mark.parametrize("d_model, n_heads", [(32, 4), (48, 6), (24, 12)])
def test_mha_alibi_matches_bloom_attention_layer(d_model, n_heads):
    B, L = 2, 13
    bloom, ours = bloom_attention_and_copy(d_model, n_heads, seed=n_heads)
    x = randn(B, L, d_model, seed=10)
    ramp = build_alibi_tensor(torch.ones(B, L), n_heads, torch.float32)
    additive = torch.zeros(B, 1, L, L).masked_fill(~causal_mask(L, L), torch.finfo(torch.float32).min)
    with torch.no_grad():
        # residual = 0 and hidden dropout 0 in eval: BLOOM's output is dense(attention)
        ref, _ = bloom(x, torch.zeros_like(x), ramp, additive, output_attentions=True)
        out = ours(x, causal=True)
    # float32, two linear layers around the attention: a few ulps of |out| ~ 1
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_bias_matches_mpt_ramp_for_the_last_query():
    # MPT's bias slope * (j - (S - 1)) is exactly ours for the query at the last position
    H, S = 12, 9
    torch.testing.assert_close(alibi_bias(H, 1, S)[:, 0], build_mpt_alibi_tensor(H, S)[:, 0], atol=1e-6, rtol=4e-6)


def test_bias_shape_and_alignment():
    bias = alibi_bias(8, 2, 4)
    assert bias.shape == (8, 2, 4) and bias.dtype == torch.float32
    expected_head0 = torch.tensor([[-1.0, -0.5, 0.0, -0.5], [-1.5, -1.0, -0.5, 0.0]])  # q_pos = 2, 3
    torch.testing.assert_close(bias[0], expected_head0, atol=0.0, rtol=0.0)
    assert math.isclose(bias[7, 1, 0].item(), -3 / 256)


@pytest.mark.parametrize("args", [(0, 2, 2), (-1, 2, 2), (4, -1, 2), (4, 2, -1), (4, 5, 3)])
def test_bias_errors(args):
    with pytest.raises(ValueError):
        alibi_bias(*args)


def test_slope_errors():
    with pytest.raises(ValueError, match="n_heads"):
        alibi_slopes(0)
