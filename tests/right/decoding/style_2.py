"""Independent correct decoding, style 2 of 3: vectorised: float64 then cast, torch.polar, grouped einsum GQA, preallocated doubling cache.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn


def repeat_kv(x, n_rep):
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(f"expected [B, Hkv, L, d], got shape {tuple(getattr(x, 'shape', ()))}")
    if not isinstance(n_rep, int) or isinstance(n_rep, bool) or n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep!r}")
    B, Hkv, L, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(B, Hkv, n_rep, L, d).reshape(B, Hkv * n_rep, L, d)


def grouped_query_attention(q, k, v, mask=None, causal=False):
    if any((not torch.is_tensor(t)) or t.ndim != 4 for t in (q, k, v)):
        raise ValueError("q, k and v must all be 4-D [B, H, L, d]")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must agree in batch, heads and length")
    B, Hq, Lq, d = q.shape
    Hkv, Lk, dv = k.shape[1], k.shape[2], v.shape[3]
    if Hkv < 1 or Hq % Hkv:
        raise ValueError(f"query heads ({Hq}) must be a multiple of kv heads ({Hkv})")
    if mask is not None and not (torch.is_tensor(mask) and mask.dtype == torch.bool):
        raise TypeError(f"mask must be a torch.bool tensor, got {getattr(mask, 'dtype', type(mask))}")
    g = Hq // Hkv
    qg = q.reshape(B, Hkv, g, Lq, d)
    logits = torch.einsum("bhgqd,bhkd->bhgqk", qg, k).reshape(B, Hq, Lq, Lk)
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    logits = logits.to(work) * (1.0 / math.sqrt(d))

    keep = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device)
    if causal:
        keep = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device).tril(diagonal=Lk - Lq)
    if mask is not None:
        keep = keep & mask.to(q.device)
    keep = keep.expand(B, Hq, Lq, Lk)
    logits = logits.masked_fill(~keep, float("-inf"))
    w = torch.softmax(logits, dim=-1)
    w = torch.nan_to_num(w, nan=0.0)            # rows with no allowed key: 0, not NaN
    w = w.to(q.dtype)
    out = torch.einsum("bhgqk,bhkv->bhgqv", w.reshape(B, Hkv, g, Lq, Lk), v).reshape(B, Hq, Lq, dv)
    return out, w


class KVCache:

    def __init__(self):
        self._kbuf = None
        self._vbuf = None
        self._n = 0

    @property
    def length(self):
        return int(self._n)

    def update(self, k, v):
        if not (torch.is_tensor(k) and torch.is_tensor(v) and k.ndim == 4 and v.ndim == 4):
            raise ValueError("k and v must be 4-D tensors [B, Hkv, Ln, d]")
        if k.shape[:3] != v.shape[:3]:
            raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} must agree in batch, heads and length")
        B, H, Ln, d = k.shape
        dv = v.shape[-1]
        if self._kbuf is None:
            cap = max(16, Ln)
            self._kbuf = k.new_empty(B, H, cap, d)
            self._vbuf = v.new_empty(B, H, cap, dv).to(k.dtype)
        else:
            b0, h0, cap, d0 = self._kbuf.shape
            if (B, H, d, dv) != (b0, h0, d0, self._vbuf.shape[-1]):
                raise ValueError(f"new k/v (B, Hkv, d, dv) = {(B, H, d, dv)} do not match the cache's "
                                 f"{(b0, h0, d0, self._vbuf.shape[-1])}")
            if self._n + Ln > cap:
                new_cap = max(2 * cap, self._n + Ln)
                kb = self._kbuf.new_empty(b0, h0, new_cap, d0)
                vb = self._vbuf.new_empty(b0, h0, new_cap, self._vbuf.shape[-1])
                kb[:, :, : self._n] = self._kbuf[:, :, : self._n]
                vb[:, :, : self._n] = self._vbuf[:, :, : self._n]
                self._kbuf, self._vbuf = kb, vb
        self._kbuf[:, :, self._n : self._n + Ln] = k
        self._vbuf[:, :, self._n : self._n + Ln] = v
        self._n += Ln
        return self._kbuf[:, :, : self._n], self._vbuf[:, :, : self._n]


class DecoderSelfAttention(nn.Module):

    def __init__(self, d_model, n_heads, n_kv_heads=None, rope_base=10000.0):
        super().__init__()
        kv = n_heads if n_kv_heads is None else n_kv_heads
        for nm, val in (("d_model", d_model), ("n_heads", n_heads), ("n_kv_heads", kv)):
            if val < 1:
                raise ValueError(f"{nm} must be >= 1, got {val}")
        if d_model % n_heads:
            raise ValueError(f"n_heads={n_heads} must divide d_model={d_model}")
        hd = d_model // n_heads
        if hd % 2:
            raise ValueError(f"head width d = {hd} must be even for RoPE")
        if n_heads % kv:
            raise ValueError(f"n_kv_heads={kv} must divide n_heads={n_heads}")
        self.n_heads, self.n_kv_heads, self.head_dim, self.rope_base = n_heads, kv, hd, rope_base
        self.q_proj = nn.Linear(d_model, n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d_model, kv * hd, bias=False)
        self.v_proj = nn.Linear(d_model, kv * hd, bias=False)
        self.o_proj = nn.Linear(n_heads * hd, d_model, bias=False)

    def forward(self, x, cache=None):
        B, L, _ = x.shape
        hd, half = self.head_dim, self.head_dim // 2
        split = lambda t, h: t.unflatten(-1, (h, hd)).permute(0, 2, 1, 3)
        q = split(self.q_proj(x), self.n_heads)
        k = split(self.k_proj(x), self.n_kv_heads)
        v = split(self.v_proj(x), self.n_kv_heads)

        past = cache.length if cache is not None else 0
        pos = torch.arange(past, past + L, device=x.device, dtype=torch.float32)
        inv = 1.0 / (self.rope_base ** (torch.arange(0, hd, 2, device=x.device).float() / hd))
        ang = torch.einsum("l,f->lf", pos, inv)
        c, s = torch.cos(ang).to(x.dtype), torch.sin(ang).to(x.dtype)   # [L, d/2]

        def rope(t):
            a, b = t[..., :half], t[..., half:]
            return torch.cat((a * c - b * s, b * c + a * s), dim=-1)

        q, k = rope(q), rope(k)
        if cache is not None:
            k, v = cache.update(k, v)
        o, _ = grouped_query_attention(q, k, v, causal=True)
        return self.o_proj(o.permute(0, 2, 1, 3).flatten(2))
