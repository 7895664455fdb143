"""Reference fidelity of solutions/decoding.py: it must compute what torch's own attention and
Hugging Face's Llama compute.

  * repeat_kv == transformers' llama repeat_kv (bit for bit) == repeat_interleave on dim 1.
  * grouped_query_attention == torch.nn.functional.scaled_dot_product_attention(...,
    enable_gqa=True) on the CPU (no mask, bool masks, causal via is_causal for Lq == Lk and via an
    explicit tril(ones(Lq, Lk), diagonal=Lk - Lq) for Lq != Lk), in float64, float32, bfloat16
    and float16; its weights == Hugging Face `eager_attention_forward` (which repeats the kv heads
    with repeat_kv) with an additive causal mask; fully masked rows give zeros, as torch 2.13's SDPA.
  * DecoderSelfAttention == transformers' LlamaAttention (eager attention, a small LlamaConfig built
    here, no download) with the same weights, step by step: a prefill, single-token steps and a
    chunk of several tokens, our KVCache against HF's DynamicCache; multi-head, grouped and
    multi-query; float32 and float64.

transformers is imported at the top on purpose, with no importorskip: without it these tests must
fail, not be skipped. Nothing is downloaded; every HF object is built locally.

Largest max-abs differences measured with torch 2.13.0 and transformers 5.25.0 on the CPU over every
case here (pytest -s prints those of the current run): grouped_query_attention vs SDPA(enable_gqa)
float64 6.7e-16, float32 3.6e-7, bfloat16 1.6e-2 (one bf16 ulp at |out| in [2, 4)), float16 2.0e-3;
its weights and output vs HF eager_attention_forward float32 0; DecoderSelfAttention vs
LlamaAttention + DynamicCache float32 0 (bit-identical at every step, the cached k and v too),
float64 1.8e-7 (HF's eager softmax runs in float32 whatever the dtype; ours stays in float64).
"""

import types

import pytest
import torch
import torch.nn.functional as F
import transformers  # noqa: F401  (a hard requirement of this file, see above)
from transformers import DynamicCache, LlamaConfig
from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding, eager_attention_forward
from transformers.models.llama.modeling_llama import repeat_kv as hf_repeat_kv

from posgrade.solutions.decoding import DecoderSelfAttention, KVCache, grouped_query_attention, repeat_kv

# Tolerances against torch (|ours - ref| <= atol + rtol * |ref|), as in test_fidelity_attention:
# the same sums in another order, so a few roundings of the output's own precision; bfloat16 and
# float16 round the weights before multiplying v (as HF eager does), torch keeps them in float32.
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=2e-6, rtol=2e-6),
    torch.bfloat16: dict(atol=2.0**-7, rtol=2.0**-6),
    torch.float16: dict(atol=2.0**-10, rtol=2.0**-9),
}
# the largest |ours - reference| seen, by comparison and dtype; printed at the end (pytest -s)
MAX_DIFF = {}


@pytest.fixture(scope="module", autouse=True)
def _report_max_diff():
    yield
    for (what, dtype), diff in sorted(MAX_DIFF.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"\nlargest |ours - {what}| in {str(dtype).removeprefix('torch.')}: {diff:.2g}", end="")


def close(ours, theirs, what, tol=None):
    diff = float((ours.double() - theirs.double()).abs().max()) if ours.numel() else 0.0
    key = (what, theirs.dtype)
    MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), diff)
    torch.testing.assert_close(ours, theirs, **(tol or TOL[theirs.dtype]))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- repeat_kv ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(2, 1, 5, 8), (1, 2, 3, 4), (3, 4, 1, 6)])
@pytest.mark.parametrize("n_rep", [1, 2, 3])
def test_repeat_kv_is_transformers(shape, n_rep):
    x = torch.randn(*shape, generator=gen())
    ours = repeat_kv(x, n_rep)
    assert torch.equal(ours, hf_repeat_kv(x, n_rep))
    assert torch.equal(ours, x.repeat_interleave(n_rep, dim=1))
    if shape[1] > 1 and n_rep > 1:  # the tiled order is another tensor: the test can tell them apart
        assert not torch.equal(ours, x.repeat(1, n_rep, 1, 1))


# -- grouped_query_attention against torch's SDPA and HF's eager attention --------------------

def qkv(B, Hq, Hkv, Lq, Lk, d, dtype, seed=0):
    g = gen(seed)
    return (torch.randn(B, Hq, Lq, d, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(B, Hkv, Lk, d, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(B, Hkv, Lk, d, generator=g, dtype=torch.float64).to(dtype))


def lower_right(Lq, Lk):
    return torch.ones(Lq, Lk, dtype=torch.bool).tril(diagonal=Lk - Lq)


# (B, Hq, Hkv, Lq, Lk, d): grouped, multi-query, multi-head, decoding steps over a cache
SHAPES = [(2, 8, 2, 6, 6, 16), (1, 4, 1, 5, 5, 8), (2, 3, 3, 4, 4, 8), (2, 6, 3, 1, 9, 8), (1, 4, 2, 3, 10, 16)]


@pytest.mark.parametrize("dtype", list(TOL), ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("how", ["none", "causal", "mask", "mask_and_causal"])
def test_gqa_is_torch_sdpa_enable_gqa(dtype, shape, how):
    B, Hq, Hkv, Lq, Lk, d = shape
    q, k, v = qkv(*shape, dtype)
    mask = torch.rand(B, 1, Lq, Lk, generator=gen(1)) < 0.7
    mask[..., 0] = True
    kw, torch_kw = {}, {}
    if how in ("mask", "mask_and_causal"):
        kw["mask"] = torch_kw["attn_mask"] = mask
    if how in ("causal", "mask_and_causal"):
        kw["causal"] = True
        if how == "causal" and Lq == Lk:
            torch_kw["is_causal"] = True  # torch's own causal path where it is right (Lq == Lk)
        else:
            torch_kw["attn_mask"] = lower_right(Lq, Lk) & torch_kw.get("attn_mask", True)
    ours, _ = grouped_query_attention(q, k, v, **kw)
    theirs = F.scaled_dot_product_attention(q, k, v, enable_gqa=True, **torch_kw)
    close(ours, theirs, "torch SDPA(enable_gqa=True)")


def test_gqa_fully_masked_rows_are_zero_as_in_torch():
    q, k, v = qkv(2, 4, 2, 4, 5, 8, torch.float32)
    mask = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    mask[0, :, 1] = False
    ours, weights = grouped_query_attention(q, k, v, mask=mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert (ours[0, :, 1] == 0).all() and (weights[0, :, 1] == 0).all()
    close(ours, theirs, "torch SDPA(enable_gqa=True)")


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_gqa_weights_are_hf_eager(shape):
    B, Hq, Hkv, Lq, Lk, d = shape
    q, k, v = qkv(*shape, torch.float32)
    additive = torch.zeros(Lq, Lk).masked_fill(~lower_right(Lq, Lk), torch.finfo(torch.float32).min)
    module = types.SimpleNamespace(num_key_value_groups=Hq // Hkv, training=False)
    hf_out, hf_weights = eager_attention_forward(module, q, k, v, additive[None, None], scaling=d**-0.5)
    ours, weights = grouped_query_attention(q, k, v, causal=True)
    close(weights, hf_weights, "HF eager_attention_forward")
    close(ours, hf_out.transpose(1, 2), "HF eager_attention_forward")  # HF returns [B, L, H, d]


# -- DecoderSelfAttention against Llama's attention with a DynamicCache -----------------------

D_MODEL, N_HEADS = 64, 8


def llama_pair(n_kv_heads, dtype, base=10000.0, seed=0):
    """Our module and transformers' LlamaAttention with the same random weights."""
    config = LlamaConfig(hidden_size=D_MODEL, num_attention_heads=N_HEADS, num_key_value_heads=n_kv_heads,
                         intermediate_size=2 * D_MODEL, num_hidden_layers=1, vocab_size=16,
                         max_position_embeddings=64, attention_bias=False,
                         rope_parameters={"rope_type": "default", "rope_theta": base})
    config._attn_implementation = "eager"
    hf = LlamaAttention(config, layer_idx=0).eval()
    ours = DecoderSelfAttention(D_MODEL, N_HEADS, n_kv_heads, rope_base=base).eval()
    assert set(ours.state_dict()) == set(hf.state_dict())
    g = gen(seed)
    hf.load_state_dict({name: torch.randn(t.shape, generator=g) * D_MODEL**-0.5 for name, t in hf.state_dict().items()})
    ours.load_state_dict(hf.state_dict())
    return ours.to(dtype), hf.to(dtype), LlamaRotaryEmbedding(config), config


# HF eager attention takes the softmax in float32 whatever the input dtype
# (softmax(..., dtype=torch.float32).to(query.dtype)), so a float64 Llama layer is only float32-exact;
# ours keeps float64. The float64 comparison with HF therefore uses float32's tolerance.
HF_TOL = {torch.float32: TOL[torch.float32], torch.float64: TOL[torch.float32]}


def hf_causal_mask(past, n, dtype):
    """HF eager's additive mask for n new tokens after past cached ones, [1, 1, n, past + n]."""
    allowed = lower_right(n, past + n)
    return torch.zeros(n, past + n, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[None, None]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_kv_heads", [8, 2, 1], ids=["mha", "gqa", "mqa"])
@pytest.mark.parametrize("base", [10000.0, 500.0])
def test_decoder_is_llama_attention_step_by_step(dtype, n_kv_heads, base):
    chunks = [5, 1, 1, 1, 3, 1]  # a prefill, single-token steps, a chunk of three, a step
    ours, hf, rotary, config = llama_pair(n_kv_heads, dtype, base)
    x = torch.randn(2, sum(chunks), D_MODEL, generator=gen(3), dtype=torch.float64).to(dtype)
    cache, hf_cache = KVCache(), DynamicCache(config=config)
    past = 0
    with torch.no_grad():
        for n in chunks:
            piece = x[:, past:past + n]
            cos, sin = rotary(piece, torch.arange(past, past + n)[None])
            # the cache is HF forward's 4th argument (named past_key_values before 5.x, cache after)
            theirs, _ = hf(piece, (cos, sin), hf_causal_mask(past, n, dtype), hf_cache)
            mine = ours(piece, cache=cache)
            close(mine, theirs, "HF LlamaAttention + DynamicCache", HF_TOL[dtype])
            past += n
            assert cache.length == hf_cache.get_seq_length() == past
        # the cached keys and values are HF's (rotated keys, unrotated values)
        k_all, v_all = cache.k, cache.v
        close(k_all, hf_cache.layers[0].keys, "HF DynamicCache keys/values", HF_TOL[dtype])
        close(v_all, hf_cache.layers[0].values, "HF DynamicCache keys/values", HF_TOL[dtype])
        # and the whole sequence at once, without a cache, is the same as HF's
        cos, sin = rotary(x, torch.arange(past)[None])
        theirs, _ = hf(x, (cos, sin), hf_causal_mask(0, past, dtype), None)
        close(ours(x), theirs, "HF LlamaAttention, whole sequence", HF_TOL[dtype])
