"""The hidden cases of relative and rope are fair: correct code written another way than the
reference (float64 angles, exp/log frequencies, HF's rotate_half tables, Meta's complex
product, tensor2tensor's pre-scaled q and -inf masking) gets full marks, and exact integer
comparisons never hinge on float32 rounding."""

import pytest
import torch
from conftest import WRONG, grade, make_workspace

from posgrade.kit import state

SEEDS = [3, 11]

# Each variant is appended to the reference module: its definitions replace the reference's.
ROPE_VARIANTS = {
    "float64-angles": '''
def rope_angles(positions, head_dim, base=10000.0, dtype=torch.float32):
    positions = torch.as_tensor(positions)
    if positions.dim() != 1:
        raise ValueError("positions must be 1-D")
    if head_dim < 2 or head_dim % 2:
        raise ValueError("head_dim must be even")
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=positions.device) / head_dim)
    angle = positions.double()[:, None] * inv
    return angle.cos().to(dtype), angle.sin().to(dtype)


def apply_rope(x, positions=None, base=10000.0, interleaved=True):
    L, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError("odd d")
    positions = torch.arange(L, device=x.device) if positions is None else torch.as_tensor(positions, device=x.device)
    if positions.shape != (L,):
        raise ValueError("positions must have length L")
    cos, sin = rope_angles(positions, d, base, dtype=torch.float64)  # everything in float64
    xf = x.double()
    a, b = (xf[..., 0::2], xf[..., 1::2]) if interleaved else (xf[..., : d // 2], xf[..., d // 2 :])
    ya, yb = a * cos - b * sin, a * sin + b * cos
    out = torch.stack((ya, yb), -1).flatten(-2) if interleaved else torch.cat((ya, yb), -1)
    return out.to(x.dtype)
''',
    "explog-hf-tables": '''
import math


def rope_angles(positions, head_dim, base=10000.0, dtype=torch.float32):
    positions = torch.as_tensor(positions)
    if positions.dim() != 1 or head_dim < 2 or head_dim % 2:
        raise ValueError("bad arguments")
    inv = torch.exp(-math.log(base) * torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim)
    angle = torch.outer(positions.float(), inv).to(dtype)
    return angle.cos(), angle.sin()


def apply_rope(x, positions=None, base=10000.0, interleaved=True):
    L, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError("odd d")
    positions = torch.arange(L, device=x.device) if positions is None else torch.as_tensor(positions, device=x.device)
    if positions.shape != (L,):
        raise ValueError("positions must have length L")
    cos, sin = rope_angles(positions, d, base)
    xf = x.float() if x.dtype != torch.float64 else x
    cos, sin = cos.to(xf.dtype), sin.to(xf.dtype)
    if interleaved:  # GPT-J: repeat_interleave with rotate_every_two
        cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        rot = torch.stack((-xf[..., 1::2], xf[..., 0::2]), -1).flatten(-2)
    else:  # HF Llama: cat(freqs, freqs) with rotate_half
        cos, sin = torch.cat((cos, cos), -1), torch.cat((sin, sin), -1)
        rot = torch.cat((-xf[..., d // 2 :], xf[..., : d // 2]), -1)
    return (xf * cos + rot * sin).to(x.dtype)
''',
    "meta-complex": '''
def apply_rope(x, positions=None, base=10000.0, interleaved=True):
    L, d = x.shape[-2], x.shape[-1]
    if d % 2:
        raise ValueError("odd d")
    positions = torch.arange(L, device=x.device) if positions is None else torch.as_tensor(positions, device=x.device)
    if positions.shape != (L,):
        raise ValueError("positions must have length L")
    perm = torch.cat((torch.arange(0, d, 2), torch.arange(1, d, 2))).to(x.device)
    inv = torch.argsort(perm)
    xi = x if interleaved else x[..., inv]  # half-split(y) = interleaved(y[inv])[perm]
    freqs = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device)[: d // 2].float() / d))
    angle = torch.outer(positions.float(), freqs)
    if x.dtype == torch.float64:
        angle = torch.outer(positions.double(), freqs.double())
    cis = torch.polar(torch.ones_like(angle), angle)
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    z = torch.view_as_complex(xi.to(work).reshape(*xi.shape[:-1], d // 2, 2).contiguous())
    out = torch.view_as_real(z * cis).flatten(-2).to(x.dtype)
    return out if interleaved else out[..., perm]
''',
}

RELATIVE_VARIANT = '''
def relative_position_index(len_q, len_k, max_distance, device=None):
    if len_q < 0 or len_k < 0 or max_distance < 0:
        raise ValueError("negative argument")
    q = torch.arange(len_q, device=device)[:, None] + (len_k - len_q)
    k = torch.arange(len_k, device=device)[None, :]
    return torch.clamp(k - q, min=-max_distance, max=max_distance) + max_distance


class RelativePositionEmbedding(nn.Module):
    def __init__(self, num_units, max_distance):
        super().__init__()
        if max_distance < 0:
            raise ValueError("negative max_distance")
        self.max_distance = max_distance
        self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, num_units))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, len_q, len_k):
        idx = relative_position_index(len_q, len_k, self.max_distance, device=self.weight.device)
        return torch.nn.functional.embedding(idx, self.weight)


def relative_attention(q, k, v, rel_k, rel_v=None, mask=None):
    """tensor2tensor's way: q pre-scaled, -inf masking, everything in float32 for half inputs."""
    Lq, d = q.shape[-2:]
    Lk, dv = k.shape[-2], v.shape[-1]
    if k.shape[-1] != d or v.shape[-2] != Lk or rel_k.shape != (Lq, Lk, d):
        raise ValueError("shapes")
    if rel_v is not None and rel_v.shape != (Lq, Lk, dv):
        raise ValueError("rel_v shape")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError("mask must be bool")
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    qf, kf, vf, rk = (t.to(work) for t in (q, k, v, rel_k))
    qf = qf * d ** -0.5
    logits = qf @ kf.transpose(-1, -2) + (qf.unsqueeze(-2) @ rk.transpose(-1, -2)).squeeze(-2)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    w = torch.softmax(logits, -1).nan_to_num(0.0)
    out = w @ vf
    if rel_v is not None:
        out = out + (w.unsqueeze(-2) @ rel_v.to(work)).squeeze(-2)
    return out.to(q.dtype), w.to(q.dtype)


def t5_relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """Element by element in Python floats (float64)."""
    if relative_position.is_floating_point():
        raise ValueError("integer distances only")
    out = []
    for n in relative_position.flatten().tolist():
        nb, bucket = num_buckets, 0
        if bidirectional:
            nb //= 2
            bucket = nb if n > 0 else 0
            m = abs(n)
        else:
            m = max(-n, 0)
        exact = nb // 2
        if m < exact:
            bucket += m
        else:
            bucket += min(exact + int(math.log(m / exact) / math.log(max_distance / exact) * (nb - exact)), nb - 1)
        out.append(bucket)
    return torch.tensor(out, dtype=torch.long, device=relative_position.device).reshape(relative_position.shape)
'''


def variant(name, code):
    return (state.kit_dir("solutions") / f"{name}.py").read_text() + "\n" + code


def full_marks(result):
    (ex,) = result.exercises
    bad = [f"{c.id}: {c.message}" for c in ex.cases if c.status == "failed"]
    assert not bad, "\n".join(bad)
    assert ex.score == ex.points


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(ROPE_VARIANTS))
def test_other_correct_rope_gets_full_marks(tmp_path, name, seed):
    ws = make_workspace(tmp_path / "ws", {"rope": variant("rope", ROPE_VARIANTS[name])})
    full_marks(grade(ws, ["rope"], seed=seed))


@pytest.mark.parametrize("seed", SEEDS)
def test_other_correct_relative_gets_full_marks(tmp_path, seed):
    ws = make_workspace(tmp_path / "ws", {"relative": variant("relative", RELATIVE_VARIANT)})
    full_marks(grade(ws, ["relative"], seed=seed))


def test_t5_configs_do_not_hinge_on_float32():
    """The graded T5 configurations give the same buckets with float64 logs: exact comparison is fair."""
    import importlib.util

    from posgrade.grading.cases import test_relative as cases
    from posgrade.solutions import relative

    spec = importlib.util.spec_from_loader("variant", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(variant("relative", RELATIVE_VARIANT), mod.__dict__)
    distances = torch.arange(-3000, 3001)
    for config in cases.T5_CONFIGS:
        assert torch.equal(mod.t5_relative_position_bucket(distances, *config),
                           relative.t5_relative_position_bucket(distances, *config)), config


def test_hardcoded_cuda_is_explained(tmp_path):
    """A hard-coded CUDA device fails on the CPU with the hint to use the input's device."""
    ws = make_workspace(tmp_path / "ws", {"rope": WRONG / "rope" / "hardcoded_cuda.py"})
    (ex,) = grade(ws, ["rope"], seed=5).exercises
    failed = [c for c in ex.cases if c.name == "test_keeps_input_device" and c.device == "cpu"]
    assert failed and failed[0].status == "failed"
    assert "x.device" in failed[0].message and "cuda" in failed[0].message.lower(), failed[0].message
