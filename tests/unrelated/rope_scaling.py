"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of the exercise rope_scaling with the errors the spec asks for, but every value is
noise (frequencies, attention factor, cos and sin), so a value case fails and the grader must not
pretend to know why.
"""

import torch

KNOWN = ("default", "linear", "dynamic", "yarn", "llama3")
NEEDS = {"default": (), "linear": ("factor",), "dynamic": ("factor", "original_max_position_embeddings"),
         "yarn": ("factor", "original_max_position_embeddings"),
         "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def rope_inv_freq(head_dim, base=10000.0, scaling=None, seq_len=None, device=None):
    if not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError("head_dim must be even and >= 2")
    scaling = scaling or {}
    rope_type = scaling.get("rope_type", "default")
    if rope_type not in KNOWN:
        raise ValueError(f"unknown rope_type {rope_type!r}; known: {', '.join(KNOWN)}")
    for key in NEEDS[rope_type]:
        if scaling.get(key) is None:
            raise ValueError(f"missing key {key}")
    if scaling.get("factor", 1.0) < 1:
        raise ValueError("factor must be >= 1")
    inv_freq = torch.rand(head_dim // 2, device=device)
    return inv_freq, float(torch.rand(()) + 0.5)


def scaled_rope_angles(positions, head_dim, base=10000.0, scaling=None):
    positions = torch.as_tensor(positions)
    if positions.dim() != 1:
        raise ValueError("positions must be 1-D")
    rope_inv_freq(head_dim, base, scaling, device=positions.device)
    shape = (positions.shape[0], head_dim // 2)
    return (torch.rand(shape, device=positions.device) * 2 - 1, torch.rand(shape, device=positions.device) * 2 - 1)
