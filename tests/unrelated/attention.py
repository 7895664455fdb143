"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 5 with the errors the spec asks for and the contract's submodules,
but every value is noise (the weights are a softmax of noise, so each row still sums to 1),
so a value case fails and the grader must not pretend to know why.
"""

import torch
import torch.nn as nn

POSITIONS = ("none", "sinusoidal", "learned", "relative", "rope", "alibi")


def scaled_dot_product_attention(q, k, v, mask=None, bias=None, dropout_p=0.0):
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("mask must be bool")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError("dropout_p must be in [0, 1)")
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    shape = (*lead, q.shape[-2], k.shape[-2])
    for extra in (mask, bias):
        if extra is not None:
            shape = torch.broadcast_shapes(shape, extra.shape)
    weights = torch.softmax(torch.randn(shape, device=q.device), dim=-1).to(q.dtype)
    out = torch.randn(*shape[:-1], v.shape[-1], device=q.device, dtype=q.dtype)
    return out, weights


def causal_mask(len_q, len_k, device=None):
    if len_q < 0 or len_k < 0:
        raise ValueError("len_q and len_k must be >= 0")
    return torch.rand(len_q, len_k, device=device) < 0.5


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, position="none", max_len=2048, max_distance=16,
                 rope_base=10000.0, dropout=0.0):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {', '.join(POSITIONS)}")
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError("d_model must be divisible by n_heads")
        if not 0.0 <= dropout < 1.0 or (position == "relative" and dropout > 0.0):
            raise ValueError("bad dropout")
        self.max_len = max_len
        self.position = position
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        head = d_model // n_heads
        if position == "learned":
            self.pos = nn.Module()
            self.pos.weight = nn.Parameter(torch.randn(max_len, d_model))
        elif position == "relative":
            self.rel_k = nn.Module()
            self.rel_k.weight = nn.Parameter(torch.randn(2 * max_distance + 1, head))
            self.rel_v = nn.Module()
            self.rel_v.weight = nn.Parameter(torch.randn(2 * max_distance + 1, head))

    def forward(self, x, mask=None, causal=False):
        if self.position in ("sinusoidal", "learned") and x.shape[-2] > self.max_len:
            raise ValueError("sequence longer than max_len")
        return self.out_proj(torch.randn_like(x)) + 0 * x
