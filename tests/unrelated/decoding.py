"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of the exercise decoding with the errors the spec asks for and the contract's
submodules, but every value is noise (the weights are a softmax of noise, so each row still sums
to 1; the cache keeps the right lengths but returns noise), so a value case fails and the grader
must not pretend to know why.
"""

import torch
import torch.nn as nn


def repeat_kv(x, n_rep):
    if x.dim() != 4 or n_rep < 1:
        raise ValueError("x must be 4-D and n_rep >= 1")
    B, H, L, d = x.shape
    return torch.randn(B, H * n_rep, L, d, device=x.device, dtype=x.dtype)


def grouped_query_attention(q, k, v, mask=None, causal=False):
    if q.shape[1] % k.shape[1] != 0:
        raise ValueError("the query heads must be a multiple of the kv heads")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError("mask must be bool")
    B, Hq, Lq, _ = q.shape
    weights = torch.softmax(torch.randn(B, Hq, Lq, k.shape[-2], device=q.device), dim=-1).to(q.dtype)
    return torch.randn(B, Hq, Lq, v.shape[-1], device=q.device, dtype=q.dtype), weights


class KVCache:
    def __init__(self):
        self.shape = None
        self.length = 0

    def update(self, k, v):
        shape = (k.shape[0], k.shape[1], k.shape[3], v.shape[3])
        if self.shape is not None and shape != self.shape:
            raise ValueError("the update does not match the cache")
        self.shape = shape
        self.length += k.shape[2]
        B, H, _, d = k.shape
        return (torch.randn(B, H, self.length, d, device=k.device, dtype=k.dtype),
                torch.randn(B, H, self.length, v.shape[3], device=v.device, dtype=v.dtype))


class DecoderSelfAttention(nn.Module):
    def __init__(self, d_model, n_heads, n_kv_heads=None, rope_base=10000.0):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if d_model % n_heads or (d_model // n_heads) % 2 or n_heads % n_kv_heads:
            raise ValueError("bad head counts")
        d = d_model // n_heads
        self.q_proj = nn.Linear(d_model, n_heads * d, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * d, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * d, bias=False)
        self.o_proj = nn.Linear(n_heads * d, d_model, bias=False)

    def forward(self, x, cache=None):
        if cache is not None:
            k = self.k_proj(x).view(x.shape[0], x.shape[1], -1, 2).transpose(1, 2)
            cache.update(k, k)
        # noise that still depends on every parameter, so gradients arrive (with other values)
        noise = torch.randn_like(x)
        return noise + 0 * (self.q_proj(x).sum() + self.k_proj(x).sum() + self.v_proj(x).sum()) + self.o_proj(x) * 0
