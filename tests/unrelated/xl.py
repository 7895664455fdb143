"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of the xl exercise with the errors the spec asks for, but every value is noise:
the embedding is uniform noise in [-1, 1], rel_shift returns random scores, and the attention
weights are a softmax of noise (each row still sums to 1), so a value case fails and the grader
must not pretend to know why.
"""

import torch


def xl_positional_embedding(pos_seq, inv_freq):
    if pos_seq.dim() != 1:
        raise ValueError("pos_seq must be 1-D")
    if inv_freq.dim() != 1 or not inv_freq.is_floating_point():
        raise ValueError("inv_freq must be a 1-D float tensor")
    dtype = torch.promote_types(pos_seq.dtype, inv_freq.dtype)
    return (2 * torch.rand(pos_seq.numel(), 2 * inv_freq.numel(), device=pos_seq.device) - 1).to(dtype)


def rel_shift(x, klen):
    if x.dim() < 2 or klen < 0 or x.shape[-1] != klen + x.shape[-2]:
        raise ValueError("x must be [..., qlen, klen + qlen]")
    noise = torch.randint(-50, 50, (*x.shape[:-1], klen), device=x.device)
    return noise.to(x.dtype) if not x.is_floating_point() else torch.randn(noise.shape, device=x.device).to(x.dtype)


def xl_relative_attention(q, k, v, r, r_w_bias, r_r_bias, mask=None):
    heads, len_q, d = q.shape[-3], q.shape[-2], q.shape[-1]
    len_k = k.shape[-2]
    if k.shape[-1] != d or v.shape[-2] != len_k:
        raise ValueError("q, k, v do not fit together")
    if r.shape[-2] != len_k + len_q or r.shape[-1] != d:
        raise ValueError("r must be [H, Lk + Lq, d]")
    if tuple(r_w_bias.shape) != (heads, d) or tuple(r_r_bias.shape) != (heads, d):
        raise ValueError("the biases must be [H, d]")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("mask must be bool")
    shape = (*torch.broadcast_shapes(q.shape[:-2], k.shape[:-2]), len_q, len_k)
    weights = torch.softmax(torch.randn(shape, device=q.device), dim=-1).to(q.dtype)
    out = torch.randn(*shape[:-1], v.shape[-1], device=q.device).to(q.dtype)
    return out, weights
