"""Independent correct alibi, style 2: compact: exp2/bit_length slopes; fused F.linear over q/k/v weights, einsum, finfo.min masks, hand-made dropout.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch


def alibi_slopes(n_heads, device=None):
    if n_heads < 1:
        raise ValueError("n_heads must be at least 1")
    c = 1 << (n_heads.bit_length() - 1)
    h = torch.arange(1, c + 1, dtype=torch.float64)
    base = torch.exp2(-8.0 * h / c)
    odd = torch.exp2(-8.0 * torch.arange(1, 2 * c + 1, 2, dtype=torch.float64) / (2 * c))
    return torch.cat([base, odd[: n_heads - c]]).to(device=device, dtype=torch.float32)


def alibi_bias(n_heads, len_q, len_k, device=None):
    if n_heads < 1 or len_q < 0 or len_k < 0 or len_q > len_k:
        raise ValueError(f"invalid alibi_bias arguments ({n_heads}, {len_q}, {len_k})")
    kpos = torch.arange(len_k, device=device, dtype=torch.float32)
    qpos = kpos[len_k - len_q:]
    dist = torch.cdist(qpos[:, None], kpos[:, None], p=1) if len_q and len_k else (qpos[:, None] - kpos).abs()
    return torch.einsum("h,ij->hij", -alibi_slopes(n_heads, device), dist)
