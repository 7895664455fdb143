"""Independent correct decoding, style 1 of 3: explicit: Python loops over pairs/heads/rows, list cache + cat.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn


def repeat_kv(x, n_rep):
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError("repeat_kv expects a 4-D tensor [B, Hkv, L, d]")
    if isinstance(n_rep, bool) or not isinstance(n_rep, int) or n_rep < 1:
        raise ValueError(f"n_rep must be an int >= 1, got {n_rep!r}")
    heads = []
    for j in range(x.shape[1]):
        for _ in range(n_rep):
            heads.append(x[:, j])
    if not heads:
        return x.clone()
    return torch.stack(heads, dim=1)


def grouped_query_attention(q, k, v, mask=None, causal=False):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor")
    if k.shape[0] != v.shape[0] or k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ in batch, heads or length")
    Hq, Hkv = q.shape[1], k.shape[1]
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"Hq={Hq} is not a multiple of Hkv={Hkv}")
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool):
        raise TypeError("mask must be a bool tensor (True = may attend)")
    n_rep = Hq // Hkv
    kk = repeat_kv(k, n_rep)
    vv = repeat_kv(v, n_rep)
    B, _, Lq, d = q.shape
    Lk = k.shape[2]

    allowed = None
    if causal:
        offset = Lk - Lq
        allowed = torch.zeros(Lq, Lk, dtype=torch.bool, device=q.device)
        for i in range(Lq):
            last = offset + i
            if last >= 0:
                allowed[i, : min(last + 1, Lk)] = True
    if mask is not None:
        m = mask.to(q.device)
        allowed = m if allowed is None else (allowed & m)

    scores = torch.matmul(q, kk.transpose(-2, -1))          # input dtype
    if q.dtype in (torch.float16, torch.bfloat16):
        scores = scores.float()
    scores = scores / math.sqrt(d)
    if allowed is not None:
        allowed = allowed.expand(B, Hq, Lq, Lk)
        scores = scores.masked_fill(~allowed, float("-inf"))
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=-1, keepdim=True)
    w = torch.where(denom > 0, e / denom.clamp_min(1e-38), torch.zeros_like(e))
    w = w.to(q.dtype)
    out = torch.matmul(w, vv)
    return out, w


class KVCache:

    def __init__(self):
        self._k = []
        self._v = []
        self._len = 0
        self._shape = None   # (B, Hkv, d, dv)
        self._dtype = None
        self._device = None

    @property
    def length(self):
        return self._len

    def update(self, k, v):
        if not isinstance(k, torch.Tensor) or k.dim() != 4 or not isinstance(v, torch.Tensor) or v.dim() != 4:
            raise ValueError("k and v must be 4-D tensors")
        if k.shape[0] != v.shape[0] or k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
            raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ in batch, heads or length")
        sig = (k.shape[0], k.shape[1], k.shape[3], v.shape[3])
        if self._shape is None:
            self._shape = sig
            self._dtype = k.dtype
            self._device = k.device
        elif sig != self._shape:
            raise ValueError(f"(B, Hkv, d, dv) = {sig} differs from the first update's {self._shape}")
        self._k.append(k.to(device=self._device, dtype=self._dtype))
        self._v.append(v.to(device=self._device, dtype=self._dtype))
        self._len += k.shape[2]
        k_all = torch.cat(self._k, dim=-2)
        v_all = torch.cat(self._v, dim=-2)
        return k_all, v_all


class DecoderSelfAttention(nn.Module):

    def __init__(self, d_model, n_heads, n_kv_heads=None, rope_base=10000.0):
        super().__init__()
        if n_kv_heads is None:
            n_kv_heads = n_heads
        if d_model < 1 or n_heads < 1 or n_kv_heads < 1:
            raise ValueError("d_model, n_heads and n_kv_heads must be >= 1")
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        head_dim = d_model // n_heads
        if head_dim % 2 != 0:
            raise ValueError(f"head width {head_dim} must be even for RoPE")
        if n_heads % n_kv_heads != 0:
            raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = head_dim
        self.rope_base = float(rope_base)
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def forward(self, x, cache=None):
        B, L, D = x.shape
        H, Hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, L, H, d).transpose(1, 2)
        k = self.k_proj(x).view(B, L, Hkv, d).transpose(1, 2)
        v = self.v_proj(x).view(B, L, Hkv, d).transpose(1, 2)

        start = 0 if cache is None else cache.length
        positions = torch.arange(start, start + L, device=x.device)
        inv_freq = 1.0 / (self.rope_base ** (torch.arange(0, d, 2, dtype=torch.int64).to(device=x.device, dtype=torch.float32) / d))
        freqs = positions.float()[:, None] * inv_freq[None, :]
        emb = torch.cat([freqs, freqs], dim=-1)
        cos = emb.cos().to(x.dtype)
        sin = emb.sin().to(x.dtype)

        def rotate_half(t):
            half = t.shape[-1] // 2
            return torch.cat([-t[..., half:], t[..., :half]], dim=-1)

        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            k, v = cache.update(k, v)
        out, _ = grouped_query_attention(q, k, v, causal=True)
        out = out.transpose(1, 2).contiguous().view(B, L, H * d)
        return self.o_proj(out)
