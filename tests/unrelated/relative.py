"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 3 with the errors the spec asks for and the contract's parameter, but
every value is noise: indices and buckets are random integers in range, the table starts
U(0, 1), forward gathers nothing, and the attention weights are a softmax of noise (each row
still sums to 1), so a value case fails and the grader must not pretend to know why.
"""

import torch
import torch.nn as nn


def relative_position_index(len_q, len_k, max_distance, device=None):
    if len_q < 0 or len_k < 0:
        raise ValueError("len_q and len_k must be >= 0")
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    return torch.randint(0, 2 * max_distance + 1, (len_q, len_k), device=device)


class RelativePositionEmbedding(nn.Module):
    def __init__(self, num_units, max_distance):
        super().__init__()
        if num_units < 1 or max_distance < 0:
            raise ValueError("num_units must be >= 1 and max_distance >= 0")
        self.num_units = num_units
        self.max_distance = max_distance
        self.weight = nn.Parameter(torch.rand(2 * max_distance + 1, num_units))

    def forward(self, len_q, len_k):
        if len_q < 0 or len_k < 0:
            raise ValueError("len_q and len_k must be >= 0")
        noise = torch.randn(len_q, len_k, self.num_units, device=self.weight.device, dtype=self.weight.dtype)
        return noise * self.weight.mean()  # noise, but still connected to weight


def relative_attention(q, k, v, rel_k, rel_v=None, mask=None):
    len_q, d = q.shape[-2], q.shape[-1]
    len_k, d_v = k.shape[-2], v.shape[-1]
    if k.shape[-1] != d or v.shape[-2] != len_k:
        raise ValueError("q, k, v do not fit together")
    if tuple(rel_k.shape) != (len_q, len_k, d):
        raise ValueError("rel_k must be [Lq, Lk, d]")
    if rel_v is not None and tuple(rel_v.shape) != (len_q, len_k, d_v):
        raise ValueError("rel_v must be [Lq, Lk, dv]")
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    shape = (*lead, len_q, len_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("mask must be bool")
        try:
            ok = torch.broadcast_shapes(mask.shape, shape) == torch.Size(shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise ValueError("mask does not broadcast to the logits")
    weights = torch.softmax(torch.randn(shape, device=q.device), dim=-1).to(q.dtype)
    out = torch.randn(*shape[:-1], d_v, device=q.device).to(q.dtype)
    return out, weights


def t5_relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    if relative_position.dtype.is_floating_point or relative_position.dtype.is_complex \
            or relative_position.dtype == torch.bool:
        raise ValueError("relative_position must be an integer tensor")
    if num_buckets < (4 if bidirectional else 2):
        raise ValueError("num_buckets too small")
    if max_distance <= (num_buckets // 2 if bidirectional else num_buckets) // 2:
        raise ValueError("max_distance too small")
    return torch.randint(0, num_buckets, relative_position.shape, device=relative_position.device)
