"""Independent correct decoding, style 3 of 3: compact blog style: key tables, index-gather repeat_kv, finfo.min masks, rope.apply_rope.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn

from .rope import apply_rope


def repeat_kv(x, n_rep):
    if x.dim() != 4 or n_rep < 1:
        raise ValueError(f"need a 4-D x and n_rep >= 1 (got {x.dim()}-D, n_rep={n_rep})")
    idx = torch.arange(x.shape[1] * n_rep, device=x.device) // n_rep
    return x[:, idx]


def grouped_query_attention(q, k, v, mask=None, causal=False):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError("k and v must have the same batch, heads and length")
    if q.shape[1] % k.shape[1]:
        raise ValueError("Hq must be a multiple of Hkv")
    if mask is not None and (not torch.is_tensor(mask) or mask.dtype is not torch.bool):
        raise TypeError("mask must be a bool tensor")
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    Lq, Lk = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-1, -2)
    if scores.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    scores = scores / math.sqrt(q.shape[-1])
    j = torch.arange(Lk, device=q.device)
    i = torch.arange(Lq, device=q.device)
    ok = (j[None, :] <= i[:, None] + (Lk - Lq)) if causal else torch.ones(Lq, Lk, dtype=torch.bool, device=q.device)
    if mask is not None:
        ok = ok & mask.to(q.device)
    scores = scores.masked_fill(~ok, torch.finfo(scores.dtype).min)
    w = scores.softmax(-1) * ok.any(-1, keepdim=True)
    w = w.masked_fill(~ok, 0.0).to(q.dtype)
    return w @ v, w


class KVCache:

    def __init__(self):
        self.k = None
        self.v = None

    @property
    def length(self):
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k, v):
        if k.dim() != 4 or v.dim() != 4 or k.shape[:3] != v.shape[:3]:
            raise ValueError("k and v must be 4-D and agree in batch, heads and length")
        if self.k is None:
            self.k, self.v = k.clone(), v.clone()
        else:
            if (k.shape[0], k.shape[1], k.shape[3], v.shape[3]) != (self.k.shape[0], self.k.shape[1], self.k.shape[3], self.v.shape[3]):
                raise ValueError("B, Hkv, d or dv differ from the first update")
            self.k = torch.cat([self.k, k.to(self.k)], dim=-2)
            self.v = torch.cat([self.v, v.to(self.v)], dim=-2)
        return self.k, self.v


class DecoderSelfAttention(nn.Module):

    def __init__(self, d_model, n_heads, n_kv_heads=None, rope_base=10000.0):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or (d_model // n_heads) % 2 or n_heads % n_kv_heads:
            raise ValueError(f"bad sizes: d_model={d_model}, n_heads={n_heads}, n_kv_heads={n_kv_heads}")
        self.h, self.hkv, self.hd, self.base = n_heads, n_kv_heads, d_model // n_heads, rope_base
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.hd, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.hd, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x, cache=None):
        B, L, D = x.shape
        q = self.q_proj(x).view(B, L, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.hkv, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.hkv, self.hd).transpose(1, 2)
        P = cache.length if cache is not None else 0
        pos = torch.arange(P, P + L, device=x.device)
        q = apply_rope(q, positions=pos, base=self.base, interleaved=False)
        k = apply_rope(k, positions=pos, base=self.base, interleaved=False)
        if cache is not None:
            k, v = cache.update(k, v)
        out, _ = grouped_query_attention(q, k, v, causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, L, D))
