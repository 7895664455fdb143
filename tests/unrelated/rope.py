"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 4 with the errors the spec asks for, but every value is noise, so a
value case fails and the grader must not pretend to know why.
"""

import torch


def rope_angles(positions, head_dim, base=10000.0, dtype=torch.float32):
    positions = torch.as_tensor(positions)
    if positions.dim() != 1:
        raise ValueError("positions must be 1-D")
    if head_dim < 2 or head_dim % 2 != 0:
        raise ValueError("head_dim must be even and >= 2")
    if base <= 0:
        raise ValueError("base must be > 0")
    shape = (positions.shape[0], head_dim // 2)
    cos = torch.rand(shape, dtype=dtype, device=positions.device) * 2 - 1
    sin = torch.rand(shape, dtype=dtype, device=positions.device) * 2 - 1
    return cos, sin


def precompute_freqs_cis(head_dim, max_len, base=10000.0, device=None):
    if max_len < 0:
        raise ValueError("max_len must be >= 0")
    cos, sin = rope_angles(torch.arange(max_len, device=device), head_dim, base)
    return torch.complex(cos, sin)


def apply_rope(x, positions=None, base=10000.0, interleaved=True):
    if not x.is_floating_point() or x.dim() < 2:
        raise ValueError("x must be a float Tensor [..., L, d]")
    seq_len, d = x.shape[-2], x.shape[-1]
    if d < 2 or d % 2 != 0:
        raise ValueError("the last dim of x must be even")
    if positions is not None:
        positions = torch.as_tensor(positions)
        if positions.dim() != 1 or positions.shape[0] != seq_len:
            raise ValueError("positions must be 1-D of length L")
    return torch.randn_like(x)
