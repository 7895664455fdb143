"""Independent correct alibi, style 1: explicit: slopes from Python lists, bias by broadcasting.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def _pow2_slopes(n):
    start = 2.0 ** (-8.0 / n)
    return [start ** (h + 1) for h in range(n)]


def alibi_slopes(n_heads, device=None):
    if not isinstance(n_heads, int) or n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")
    c = 2 ** int(math.floor(math.log2(n_heads)))
    slopes = _pow2_slopes(c)
    if c != n_heads:
        extra = _pow2_slopes(2 * c)[0::2]
        slopes = slopes + extra[: n_heads - c]
    return torch.tensor(slopes, dtype=torch.float32, device=device)


def alibi_bias(n_heads, len_q, len_k, device=None):
    if n_heads < 1:
        raise ValueError("n_heads must be >= 1")
    if len_q < 0 or len_k < 0:
        raise ValueError("lengths must be >= 0")
    if len_q > len_k:
        raise ValueError("len_q must be <= len_k")
    slopes = alibi_slopes(n_heads, device=device)
    q_pos = torch.arange(len_q, device=device) + (len_k - len_q)
    k_pos = torch.arange(len_k, device=device)
    dist = (q_pos[:, None] - k_pos[None, :]).abs().to(torch.float32)
    bias = -slopes[:, None, None] * dist[None, :, :]
    return bias.to(torch.float32)
