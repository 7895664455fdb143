"""Fidelity of solutions/rope_scaling.py against transformers' own RoPE scaling code.

References, none of them written from the solution (transformers 5.25.0):
  * `transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS[rope_type](config, device, seq_len=...)`
    for "linear", "dynamic", "yarn" and "llama3", with a tiny LlamaConfig whose
    rope_parameters hold the same dict (plus rope_theta) and, for "dynamic", whose
    max_position_embeddings is the original length (HF reads it from there);
  * `LlamaRotaryEmbedding.compute_default_rope_parameters` for "default" (5.x keeps the
    default out of ROPE_INIT_FUNCTIONS);
  * `LlamaRotaryEmbedding.forward` for the angles, cos and sin times attention_scaling; for
    "dynamic" a fresh module, whose `dynamic_rope_update` recomputes inv_freq from
    max(position_ids) + 1 when that exceeds max_position_embeddings.

transformers is imported at module level on purpose: without it these tests must fail, not
skip. Nothing is downloaded (tiny configs, no from_pretrained).

Largest differences measured over every case below (torch 2.13.0+cpu, transformers 5.25.0);
run with -s to print the table of the current run:

    rope_type   inv_freq     attention_factor   cos/sin (LlamaRotaryEmbedding.forward)
    default     0            0                  0
    linear      0            0                  0
    dynamic     0            0                  1.9e-03 at positions up to 39999 (see below)
    yarn        0            0                  0
    llama3      0            0                  0

Dynamic's angles differ because HF's dynamic_rope_update passes seq_len as a tensor, so its
enlarged base is computed in float32 (ours is a Python float, as HF's own init-time path
computes it): theta_i then differs by a few float32 ulps, and the angle at position m by about
m times that; the test allows 4 * m * 2^-24 (9.5e-3 at m = 39999), the grader's own allowance.
"""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from posgrade.solutions import rope_scaling

MAX_DIFF = {}  # (rope_type, what) -> largest max-abs difference seen in this run


def record(rope_type, what, diff):
    key = (rope_type, what)
    MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), float(diff))
    return float(diff)


@pytest.fixture(scope="module", autouse=True)
def _print_max_diffs():
    yield
    print("\nlargest max-abs differences, solutions/rope_scaling.py vs transformers:")
    for (rope_type, what), diff in sorted(MAX_DIFF.items()):
        print(f"  {rope_type:8s} {what:18s} {diff:.3e}")


# (head_dim, base, scaling): several parameter sets per type, from real configs and edge cases
PARAMS = [
    (64, 10000.0, {"rope_type": "default"}),
    (128, 500000.0, {"rope_type": "default"}),
    (2, 10000.0, {"rope_type": "default"}),
    (64, 10000.0, {"rope_type": "linear", "factor": 4.0}),
    (128, 10000.0, {"rope_type": "linear", "factor": 2}),
    (16, 1000.0, {"rope_type": "linear", "factor": 1.0}),
    (64, 10000.0, {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 2048}),
    (128, 500000.0, {"rope_type": "dynamic", "factor": 8.0, "original_max_position_embeddings": 8192}),
    (4, 10000.0, {"rope_type": "dynamic", "factor": 1.5, "original_max_position_embeddings": 64}),
    # Qwen2.5 / YaRN paper settings, DeepSeek's mscale pair, an explicit attention factor, gpt-oss's
    # truncate=False, non-default betas
    (128, 1000000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}),
    (64, 10000.0, {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096}),
    (64, 10000.0, {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                   "mscale": 1.0, "mscale_all_dim": 1.0, "beta_fast": 32, "beta_slow": 1}),
    (64, 10000.0, {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
                   "mscale": 0.707, "mscale_all_dim": 0.5}),
    (64, 150000.0, {"rope_type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                    "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False}),
    (32, 10000.0, {"rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 1024,
                   "attention_factor": 0.8, "beta_fast": 16, "beta_slow": 2}),
    (8, 10000.0, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}),
    (16, 10000.0, {"rope_type": "yarn", "factor": 1.0, "original_max_position_embeddings": 256}),
    (128, 500000.0, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}),
    (64, 500000.0, {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 8192}),
    (64, 10000.0, {"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 2.0, "high_freq_factor": 8.0,
                   "original_max_position_embeddings": 1024}),
    (8, 10000.0, {"rope_type": "llama3", "factor": 4, "low_freq_factor": 1, "high_freq_factor": 4,
                  "original_max_position_embeddings": 64}),
]


def _id(p):
    head_dim, base, scaling = p
    extra = ",".join(f"{k}={v}" for k, v in scaling.items() if k != "rope_type")
    return f"{scaling['rope_type']}-d{head_dim}-{base:g}-{extra}"


def hf_config(head_dim, base, scaling):
    """A tiny LlamaConfig carrying the same RoPE parameters, as HF's functions read them."""
    params = {k: v for k, v in scaling.items() if not (scaling["rope_type"] == "dynamic"
                                                      and k == "original_max_position_embeddings")}
    params["rope_theta"] = base
    original = scaling.get("original_max_position_embeddings", 4096)
    # dynamic: HF's original length is max_position_embeddings; yarn/llama3: the scaled length
    max_pos = original if scaling["rope_type"] in ("default", "linear", "dynamic") \
        else int(original * scaling["factor"]) + (scaling["rope_type"] == "llama3")
    return LlamaConfig(hidden_size=2 * head_dim, num_attention_heads=2, num_key_value_heads=2, head_dim=head_dim,
                       intermediate_size=8, num_hidden_layers=1, vocab_size=8, max_position_embeddings=max_pos,
                       rope_parameters=params)


def hf_inv_freq(head_dim, base, scaling, seq_len=None):
    config = hf_config(head_dim, base, scaling)
    if scaling["rope_type"] == "default":
        return LlamaRotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[scaling["rope_type"]](config, torch.device("cpu"), seq_len=seq_len)


def check_inv_freq(head_dim, base, scaling, seq_len=None):
    ours, ours_factor = rope_scaling.rope_inv_freq(head_dim, base, dict(scaling), seq_len=seq_len)
    theirs, their_factor = hf_inv_freq(head_dim, base, scaling, seq_len)
    assert ours.dtype == torch.float32 and ours.shape == (head_dim // 2,)
    assert isinstance(ours_factor, float)
    record(scaling["rope_type"], "inv_freq", (ours.double() - theirs.double()).abs().max())
    record(scaling["rope_type"], "attention_factor", abs(ours_factor - their_factor))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert ours_factor == pytest.approx(their_factor, rel=1e-15, abs=0)
    return ours, theirs


@pytest.mark.parametrize("params", PARAMS, ids=_id)
def test_inv_freq_and_attention_factor(params):
    check_inv_freq(*params)


@pytest.mark.parametrize("params", [p for p in PARAMS if p[2]["rope_type"] == "dynamic"], ids=_id)
@pytest.mark.parametrize("fraction", [0.25, 1.0, 1.5, 4.0, 9.3])
def test_dynamic_at_seq_len(params, fraction):
    """below the original length HF keeps the default frequencies; above it enlarges the base"""
    head_dim, base, scaling = params
    seq_len = max(1, int(fraction * scaling["original_max_position_embeddings"]))
    ours, _ = check_inv_freq(head_dim, base, scaling, seq_len)
    default, _ = rope_scaling.rope_inv_freq(head_dim, base)
    if seq_len <= scaling["original_max_position_embeddings"]:
        assert torch.equal(ours, default)
    else:
        assert (ours[1:] < default[1:]).all() and ours[0] == default[0]


def test_longrope_is_not_offered():
    """HF knows more types; the exercise's known types are exactly these five"""
    assert {"linear", "dynamic", "yarn", "llama3"} <= set(ROPE_INIT_FUNCTIONS)
    with pytest.raises(ValueError, match="default, linear, dynamic, yarn, llama3"):
        rope_scaling.rope_inv_freq(8, scaling={"rope_type": "longrope"})


def hf_angles(head_dim, base, scaling, positions):
    """cos, sin [L, d/2] from a fresh LlamaRotaryEmbedding; checks HF's halves are equal."""
    rotary = LlamaRotaryEmbedding(hf_config(head_dim, base, scaling))
    cos, sin = rotary(torch.zeros(1), positions[None, :])  # [1, L, d] = cat(freqs, freqs)
    d = head_dim // 2
    assert torch.equal(cos[0, :, :d], cos[0, :, d:]) and torch.equal(sin[0, :, :d], sin[0, :, d:])
    return cos[0, :, :d], sin[0, :, :d]


# a window from 0, a window far out, and scattered positions on both sides of the original lengths
ANGLE_POSITIONS = torch.cat((torch.arange(0, 300), torch.arange(9000, 9040),
                             torch.tensor([5, 2047, 2048, 4100, 16385, 39999])))


@pytest.mark.parametrize("params", PARAMS, ids=_id)
def test_angles_against_llama_rotary_embedding(params):
    positions = ANGLE_POSITIONS
    head_dim, base, scaling = params
    cos, sin = rope_scaling.scaled_rope_angles(positions, head_dim, base, dict(scaling))
    want_cos, want_sin = hf_angles(head_dim, base, scaling, positions)
    assert cos.dtype == torch.float32 and cos.shape == want_cos.shape
    diff = max(float((cos - want_cos).abs().max()), float((sin - want_sin).abs().max()))
    record(scaling["rope_type"], "cos/sin", diff)
    if scaling["rope_type"] == "dynamic":
        # HF recomputes with seq_len a tensor, so its enlarged base is a float32 (ours a Python
        # float): theta_i differs by about 2i/d * 2^-24 relative, the angle by m * that
        atol = 4 * (int(positions.max()) + 1) * 2.0**-24
        torch.testing.assert_close(cos, want_cos, rtol=0, atol=atol)
        torch.testing.assert_close(sin, want_sin, rtol=0, atol=atol)
    else:
        assert torch.equal(cos, want_cos) and torch.equal(sin, want_sin)


def test_yarn_attention_factor_scales_cos_and_sin():
    """HF multiplies both cos and sin by attention_scaling = 0.1 ln(factor) + 1"""
    scaling = {"rope_type": "yarn", "factor": 16.0, "original_max_position_embeddings": 4096}
    positions = torch.arange(0, 50)
    cos, sin = rope_scaling.scaled_rope_angles(positions, 64, 10000.0, scaling)
    rotary = LlamaRotaryEmbedding(hf_config(64, 10000.0, scaling))
    assert rotary.attention_scaling == pytest.approx(0.1 * math.log(16.0) + 1)
    assert torch.allclose(cos[0], torch.full((32,), rotary.attention_scaling))
    assert torch.allclose(cos**2 + sin**2, torch.full_like(cos, rotary.attention_scaling**2))
