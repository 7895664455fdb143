"""Fidelity of solutions/rope.py against real RoPE code (REFERENCES.md section 4).

References, none of them written from the solution:
  * Hugging Face Llama (half-split): `LlamaRotaryEmbedding` built from a tiny LlamaConfig,
    `rotate_half`, `apply_rotary_pos_emb`;
  * Hugging Face GPT-J (interleaved): `create_sinusoidal_positions`, `rotate_every_two`,
    `apply_rotary_pos_emb`;
  * Meta LLaMA's complex formulation (`precompute_freqs_cis`, `apply_rotary_emb`), re-stated
    below from meta-llama/llama `llama/model.py` because that package is not on PyPI;
  * the permutation identity between the two layouts, and HF's conversion `permute`.

transformers is imported at module level on purpose: without it these tests must fail,
not skip. Nothing is downloaded (tiny configs, no from_pretrained).

Largest max-abs differences measured over every case below (torch 2.13.0+cpu,
transformers 5.23.0, randn inputs with max |x| about 5, positions up to 5095, bases 1e4 and
5e5, head_dim 2/64/128); run with -s to print the table of the current run:

    function                 reference                              dtype      max |diff|
    rope_angles (cos, sin)   HF LlamaRotaryEmbedding, GPT-J table   float32    0
    precompute_freqs_cis     Meta precompute_freqs_cis (polar)      complex64  6.0e-08
    apply_rope half-split    HF Llama apply_rotary_pos_emb          float32    0
    apply_rope half-split    HF Llama, float32 math then rounded    bf16/fp16  0 / 0
    apply_rope half-split    HF Llama, its native half path         bf16/fp16  3.1e-02 / 3.9e-03
    apply_rope interleaved   HF GPT-J apply_rotary_pos_emb          float32    0
    apply_rope interleaved   HF GPT-J, float32 math then rounded    bf16/fp16  0 / 0
    apply_rope interleaved   HF GPT-J, its native half path         bf16/fp16  3.1e-02 / 3.9e-03
    apply_rope interleaved   Meta apply_rotary_emb (complex)        float32    9.5e-07
    apply_rope interleaved   Meta apply_rotary_emb (complex)        bf16/fp16  7.8e-03 / 2.0e-03
    apply_rope half-split    rotate_half with float64 angles        float64    0

The native half paths differ by at most 0.98 eps * max |x| (they round cos, sin and each
product in half precision; the contract computes in float32 and rounds once).
"""

import math

import pytest
import torch
from transformers import LlamaConfig
from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb as gptj_apply_rotary_pos_emb
from transformers.models.gptj.modeling_gptj import create_sinusoidal_positions, rotate_every_two
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, rotate_half
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_apply_rotary_pos_emb

from posgrade.solutions import rope

HEAD_DIMS = [2, 64, 128]
LENGTHS = [1, 7, 4096]
OFFSETS = [0, 1000]
BASES = [10000.0, 500000.0]
HALF_DTYPES = [torch.bfloat16, torch.float16]

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
    print("\nlargest max-abs differences, solutions/rope.py vs reference:")
    for (function, reference, dtype), diff in sorted(MAX_DIFF.items()):
        print(f"  {function:22s} {reference:34s} {dtype:9s} {diff:.3e}")




def angle_tol(max_pos, scale):
    """Allowed float32 deviation for outputs of size `scale` at positions up to max_pos.

    Two float32 computations of the angle m * theta_i can differ by about m * 2^-24 (one
    rounding of the product, plus theta_i itself to 1 ulp); an angle error delta moves a
    rotated pair by at most |pair| * delta. Add a few ulps for cos/sin and the products.
    """
    return scale * (4 * (max_pos + 1) * 2.0**-24 + 8 * 2.0**-24)


def llama_cos_sin(head_dim, base, positions, dtype):
    """cos, sin [1, L, head_dim] from HF's own rotary module, as a Llama layer gets them."""
    config = LlamaConfig(
        hidden_size=2 * head_dim,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=head_dim,
        intermediate_size=8,
        num_hidden_layers=1,
        vocab_size=8,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": base},
    )
    rotary = LlamaRotaryEmbedding(config)
    dummy = torch.zeros(1, dtype=dtype)  # only its dtype and device are read
    return rotary(dummy, positions[None, :])


def hf_halfsplit(x, cos, sin):
    """HF Llama's apply_rotary_pos_emb on x [B, H, L, d] (q and k get the same treatment)."""
    q_embed, k_embed = llama_apply_rotary_pos_emb(x, x, cos, sin, unsqueeze_dim=1)
    assert torch.equal(q_embed, k_embed)
    return q_embed


def gptj_interleaved(x_bhld, positions, dtype=None):
    """GPT-J's rotation of x [B, H, L, d], in GPT-J's own layout [B, L, H, d].

    As GPTJAttention does: gather the sin|cos table at the positions, cast it to the input
    dtype (unless dtype says otherwise), split, repeat_interleave, rotate_every_two.
    """
    d = x_bhld.shape[-1]
    table = create_sinusoidal_positions(int(positions.max()) + 1, d)  # [max_pos, d] = [sin | cos]
    sincos = table[positions][None].to(dtype or x_bhld.dtype)  # [1, L, d]
    sin, cos = torch.split(sincos, d // 2, dim=-1)
    x_blhd = x_bhld.transpose(1, 2)
    return gptj_apply_rotary_pos_emb(x_blhd, sin, cos).transpose(1, 2)


def meta_precompute_freqs_cis(dim, end, theta=10000.0):
    """meta-llama/llama llama/model.py::precompute_freqs_cis, verbatim apart from formatting."""
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device)
    freqs = torch.outer(t, freqs).float()
    return torch.polar(torch.ones_like(freqs), freqs)  # complex64


def meta_apply_rotary_emb(xq, freqs_cis):
    """meta-llama/llama llama/model.py::apply_rotary_emb for one tensor, layout [B, S, H, D]."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    assert freqs_cis.shape == (xq_.shape[1], xq_.shape[-1])  # reshape_for_broadcast's check
    freqs_cis = freqs_cis.view(1, xq_.shape[1], 1, xq_.shape[-1])
    return torch.view_as_real(xq_ * freqs_cis).flatten(3).type_as(xq)


def hf_conversion_permute(w, n_heads, dim1, dim2):
    """HF models/llama/convert_llama_weights_to_hf.py::permute (Meta wq/wk -> HF layout)."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def make_x(head_dim, seq_len, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    heads = 2 if seq_len > 1000 else 3
    return torch.randn(2, heads, seq_len, head_dim, generator=g).to(dtype)


# ---------------------------------------------------------------- angles and frequencies


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_rope_angles_match_llama_rotary_embedding(head_dim, base):
    positions = torch.arange(1000, 1000 + 4096)  # with an offset, as after a 1000-token cache
    cos, sin = rope.rope_angles(positions, head_dim, base)
    assert cos.dtype == sin.dtype == torch.float32
    assert cos.shape == sin.shape == (4096, head_dim // 2)
    hf_cos, hf_sin = llama_cos_sin(head_dim, base, positions, torch.float32)  # [1, L, d] = cat(freqs, freqs)
    # HF repeats the d/2 angles twice (cat(freqs, freqs)); both halves must match ours
    for half in (slice(None, head_dim // 2), slice(head_dim // 2, None)):
        # same float32 expression as ours: a few ulps at most (measured 0.0)
        tol = 8 * 2.0**-24
        reference = "HF LlamaRotaryEmbedding"
        assert record("rope_angles.cos", reference, torch.float32, cos, hf_cos[0, :, half]) <= tol
        assert record("rope_angles.sin", reference, torch.float32, sin, hf_sin[0, :, half]) <= tol


@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_rope_angles_match_gptj_table(head_dim):
    table = create_sinusoidal_positions(5096, head_dim)  # [5096, d] = [sin | cos], base 10000
    cos, sin = rope.rope_angles(torch.arange(5096), head_dim)
    tol = 8 * 2.0**-24  # same float32 expression (measured 0.0)
    reference = "HF GPT-J create_sinusoidal_positions"
    assert record("rope_angles.sin", reference, torch.float32, sin, table[:, : head_dim // 2]) <= tol
    assert record("rope_angles.cos", reference, torch.float32, cos, table[:, head_dim // 2 :]) <= tol


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_precompute_freqs_cis_matches_meta(head_dim, base):
    ours = rope.precompute_freqs_cis(head_dim, 5096, base)
    meta = meta_precompute_freqs_cis(head_dim, 5096, base)
    assert ours.dtype == torch.complex64 and ours.shape == (5096, head_dim // 2)
    # polar(1, a) and complex(cos a, sin a) from the same float32 angle: 1-2 ulps of a unit
    # number at most (measured 0.0)
    diff = record("precompute_freqs_cis", "Meta precompute_freqs_cis", torch.complex64,
                  torch.view_as_real(ours), torch.view_as_real(meta))
    assert diff <= 4 * 2.0**-24
    assert torch.allclose(ours.abs(), torch.ones(()), atol=1e-6)  # unit numbers: pure rotations


# ---------------------------------------------------------------- half-split: HF Llama


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("seq_len", LENGTHS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_halfsplit_matches_hf_llama_float32(head_dim, seq_len, offset, base):
    x = make_x(head_dim, seq_len, torch.float32)
    positions = torch.arange(offset, offset + seq_len)
    ours = rope.apply_rope(x, positions, base=base, interleaved=False)
    cos, sin = llama_cos_sin(head_dim, base, positions, torch.float32)
    ref = hf_halfsplit(x, cos, sin)
    assert ours.dtype == torch.float32 and ours.shape == x.shape
    tol = angle_tol(offset + seq_len, x.abs().max().item())  # measured 0.0: same float32 ops
    assert record("apply_rope(half-split)", "HF Llama apply_rotary_pos_emb", torch.float32, ours, ref) <= tol


@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("seq_len", LENGTHS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_halfsplit_matches_hf_llama_half(head_dim, seq_len, offset, base, dtype):
    x = make_x(head_dim, seq_len, dtype)
    positions = torch.arange(offset, offset + seq_len)
    ours = rope.apply_rope(x, positions, base=base, interleaved=False)
    assert ours.dtype == dtype and ours.shape == x.shape
    eps = torch.finfo(dtype).eps
    scale = x.float().abs().max().item()

    # (a) HF's formula in float32 on the same (exactly upcast) input, rounded once: this is
    # what the contract asks for, so at most 1 ulp (eps * |value|) apart (measured 0.0).
    cos32, sin32 = llama_cos_sin(head_dim, base, positions, torch.float32)
    ref32 = hf_halfsplit(x.float(), cos32, sin32).to(dtype)
    diff = record("apply_rope(half-split)", "HF Llama, f32 math, rounded", dtype, ours, ref32)
    assert diff <= eps * scale + angle_tol(offset + seq_len, scale)

    # (b) HF's own half-precision path: cos/sin cast to x.dtype, products and sum rounded in
    # x.dtype. With u = eps/2 and |x_a|, |x_b| <= scale, |y| <= sqrt(2) scale: rounding cos and
    # the product costs <= 2u|x_a|, the same for sin and x_b, the sum and our final rounding
    # <= 2u|y|, in all <= u (4 + 2.83) scale < 4 eps scale (measured 0.98 eps scale).
    cos_h, sin_h = llama_cos_sin(head_dim, base, positions, dtype)
    ref_h = hf_halfsplit(x, cos_h, sin_h)
    diff = record("apply_rope(half-split)", "HF Llama, native half path", dtype, ours, ref_h)
    assert diff <= 4 * eps * scale


# ---------------------------------------------------------------- interleaved: GPT-J, Meta


@pytest.mark.parametrize("dtype", [torch.float32] + HALF_DTYPES)
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("seq_len", LENGTHS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_interleaved_matches_gptj(head_dim, seq_len, offset, dtype):
    # GPT-J's table is hard-wired to base 10000
    x = make_x(head_dim, seq_len, dtype, seed=1)
    positions = torch.arange(offset, offset + seq_len)
    ours = rope.apply_rope(x, positions, interleaved=True)
    assert ours.dtype == dtype and ours.shape == x.shape
    scale = x.float().abs().max().item()
    ref32 = gptj_interleaved(x.float(), positions, torch.float32).to(dtype)
    reference = "HF GPT-J, f32 math" + (", rounded" if dtype != torch.float32 else "")
    diff = record("apply_rope(interleaved)", reference, dtype, ours, ref32)
    # float32: same ops, measured 0.0; half: one rounding of the same float32 value (1 ulp)
    eps = torch.finfo(dtype).eps if dtype != torch.float32 else 0.0
    assert diff <= eps * scale + angle_tol(offset + seq_len, scale)
    if dtype != torch.float32:
        # GPT-J's native path casts sin/cos to x.dtype (GPTJAttention: sincos.to(key.dtype));
        # the same rounding budget as for HF Llama above: < 4 eps scale (measured 0.93 eps scale)
        ref_h = gptj_interleaved(x, positions)
        diff = record("apply_rope(interleaved)", "HF GPT-J, native half path", dtype, ours, ref_h)
        assert diff <= 4 * torch.finfo(dtype).eps * scale


@pytest.mark.parametrize("dtype", [torch.float32] + HALF_DTYPES)
@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("seq_len", LENGTHS)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_interleaved_matches_meta_complex(head_dim, seq_len, offset, base, dtype):
    x = make_x(head_dim, seq_len, dtype, seed=2)  # [B, H, L, d]
    positions = torch.arange(offset, offset + seq_len)
    ours = rope.apply_rope(x, positions, base=base, interleaved=True)
    freqs_cis = meta_precompute_freqs_cis(head_dim, 2 * (offset + seq_len), base)  # 2x, as Meta
    ref = meta_apply_rotary_emb(x.transpose(1, 2), freqs_cis[offset : offset + seq_len]).transpose(1, 2)
    scale = x.float().abs().max().item()
    diff = record("apply_rope(interleaved)", "Meta apply_rotary_emb (complex)", dtype, ours, ref)
    # Meta also computes in float32 and casts back once (type_as). A complex product may
    # round in a different order (or fuse) from our two real products: a few float32 ulps
    # (measured 9.5e-7 in float32); in half both round the float32 result once, and two
    # float32 values a few ulps apart can round to neighbouring half values: 1 ulp.
    eps = torch.finfo(dtype).eps if dtype != torch.float32 else 0.0
    assert diff <= eps * scale + angle_tol(offset + seq_len, scale)


# ---------------------------------------------------------------- the two layouts


@pytest.mark.parametrize("dtype", [torch.float32] + HALF_DTYPES)
@pytest.mark.parametrize("head_dim", HEAD_DIMS)
def test_permutation_identity(head_dim, dtype):
    # HF_halfsplit(x[..., perm]) == Meta_interleaved(x)[..., perm], perm = evens then odds
    x = make_x(head_dim, 33, dtype, seed=3)
    positions = torch.arange(500, 533)
    perm = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    interleaved = rope.apply_rope(x, positions, interleaved=True)
    halfsplit = rope.apply_rope(x[..., perm], positions, interleaved=False)
    # the very same float32 operations on the very same numbers, only stored elsewhere
    assert record("apply_rope", "permutation identity (self)", dtype, halfsplit, interleaved[..., perm]) == 0.0
    # and the identity holds between the real implementations: HF Llama vs GPT-J
    cos, sin = llama_cos_sin(head_dim, 10000.0, positions, torch.float32)
    hf = hf_halfsplit(x[..., perm].float(), cos, sin)
    gptj = gptj_interleaved(x.float(), positions, torch.float32)
    assert max_abs(hf, gptj[..., perm]) == 0.0


def test_meta_weights_need_hf_permute():
    # Meta's wq with interleaved RoPE == HF-permuted wq with half-split RoPE (REFERENCES 4):
    # same scores; without the permutation the scores differ.
    torch.manual_seed(4)
    n_heads, head_dim, dim = 4, 16, 64
    wq, wk = torch.randn(dim, dim) / 8, torch.randn(dim, dim) / 8
    x = torch.randn(10, dim)
    positions = torch.arange(10)

    def scores(w_q, w_k, interleaved):
        q = (x @ w_q.T).view(10, n_heads, head_dim).transpose(0, 1)  # [H, L, d]
        k = (x @ w_k.T).view(10, n_heads, head_dim).transpose(0, 1)
        q = rope.apply_rope(q, positions, interleaved=interleaved)
        k = rope.apply_rope(k, positions, interleaved=interleaved)
        return q @ k.transpose(-2, -1)

    meta = scores(wq, wk, interleaved=True)
    wq_hf = hf_conversion_permute(wq, n_heads, dim, dim)
    wk_hf = hf_conversion_permute(wk, n_heads, dim, dim)
    hf = scores(wq_hf, wk_hf, interleaved=False)
    # same numbers summed in a different order: float32 summation noise only
    assert max_abs(meta, hf) <= 1e-5 * meta.abs().max().item()
    unconverted = scores(wq, wk, interleaved=False)
    assert max_abs(meta, unconverted) > 1e-2  # the silent bug is not silent here


def test_layouts_differ_and_match_docstring_example():
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]])  # [L=1, d=4] at position 1
    inter = rope.apply_rope(x, torch.tensor([1]), interleaved=True)
    half = rope.apply_rope(x, torch.tensor([1]), interleaved=False)
    c1, s1, c2, s2 = math.cos(1), math.sin(1), math.cos(0.01), math.sin(0.01)
    assert torch.allclose(inter, torch.tensor([[c1, s1, c2, s2]]), atol=1e-6)
    assert torch.allclose(half, torch.tensor([[c1 - s1, 0.0, s1 + c1, 0.0]]), atol=1e-6)
    # rotate_half / rotate_every_two with cos = 1, sin = 1 isolate the pairing itself
    y = torch.arange(8.0).view(1, 1, 1, 8)
    assert rotate_half(y).flatten().tolist() == [-4, -5, -6, -7, 0, 1, 2, 3]
    assert rotate_every_two(y).flatten().tolist() == [-1, 0, -3, 2, -5, 4, -7, 6]


# ---------------------------------------------------------------- properties of the math


@pytest.mark.parametrize("interleaved", [True, False])
def test_relative_property_and_norm(interleaved):
    torch.manual_seed(5)
    q, k = torch.randn(64), torch.randn(64)

    def score(m, n):
        qm = rope.apply_rope(q.view(1, 64), torch.tensor([m]), interleaved=interleaved)
        kn = rope.apply_rope(k.view(1, 64), torch.tensor([n]), interleaved=interleaved)
        return (qm * kn).sum().item()

    for m, n, t in [(3, 7, 100), (50, 10, 1000), (0, 0, 4000)]:
        # exact in real arithmetic; float32 angles drift by ~|pos| 2^-24 rad, times |q||k|
        tol = 4 * (m + n + 2 * t + 2) * 2.0**-24 * q.norm().item() * k.norm().item() + 1e-5
        assert abs(score(m, n) - score(m + t, n + t)) <= tol
    x = torch.randn(3, 100, 64)
    y = rope.apply_rope(x, torch.arange(100), interleaved=interleaved)
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-5)  # rotations keep norms
    assert torch.equal(rope.apply_rope(x[:, :1], interleaved=interleaved), x[:, :1])  # m = 0: identity


def test_float64_stays_float64_with_float64_angles():
    positions = torch.arange(100000, 100008)  # large positions: float32 angles are visibly off
    x = make_x(128, 8, torch.float64, seed=6)
    ours = rope.apply_rope(x, positions, interleaved=False)
    assert ours.dtype == torch.float64
    # HF's combination formula with cos/sin from float64 angles
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, 128, 2, dtype=torch.float64) / 128))
    emb = torch.cat([positions.double()[:, None] * inv_freq] * 2, dim=-1)[None]  # [1, L, d]
    ref64 = hf_halfsplit(x, emb.cos(), emb.sin())
    diff = record("apply_rope(half-split)", "HF rotate_half, f64 angles", torch.float64, ours, ref64)
    assert diff <= 1e-9  # float64 angle error ~1e5 * 2^-53 ~ 1e-11 (measured 0.0: same ops)
    # float32 angles would be off by ~1e5 * 2^-24 ~ 6e-3: the float64 path really is float64
    ref32 = rope.apply_rope(x.float(), positions, interleaved=False).double()
    assert max_abs(ref32, ref64) > 1e-4


# ---------------------------------------------------------------- contract details


def test_default_positions_inputs_untouched_and_errors():
    x = make_x(8, 5, torch.float32)
    before = x.clone()
    assert torch.equal(rope.apply_rope(x), rope.apply_rope(x, torch.arange(5)))
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match="even"):
        rope.apply_rope(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="length"):
        rope.apply_rope(x, torch.arange(4))
    with pytest.raises(ValueError, match="head_dim"):
        rope.rope_angles(torch.arange(4), 5)
    with pytest.raises(ValueError, match="max_len"):
        rope.precompute_freqs_cis(8, -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_hf_on_cuda():
    x = make_x(64, 300, torch.bfloat16).cuda()
    positions = torch.arange(1000, 1300, device="cuda")
    ours = rope.apply_rope(x, positions, interleaved=False)
    assert ours.device == x.device and ours.dtype == torch.bfloat16
    cos, sin = (t.cuda() for t in llama_cos_sin(64, 10000.0, positions.cpu(), torch.float32))
    ref = hf_halfsplit(x.float(), cos, sin).to(torch.bfloat16)
    scale = x.float().abs().max().item()
    # CUDA sin/cos differ from the CPU ones by ulps: 1 bf16 ulp of rounding plus angle noise
    assert max_abs(ours, ref) <= torch.finfo(torch.bfloat16).eps * scale + angle_tol(1300, scale)
