"""Mistake: interleaved RoPE instead of half-split
Caught by: test_forward_values

decoding — a decoder's self-attention step with a KV cache and grouped-query attention.

A decoder generates one token at a time. Recomputing the keys and values of the whole prefix
at every step would cost O(L²) projections; a KV cache keeps them instead: each call projects
only its new tokens, appends their k and v to the cache, and attends over everything cached.
The new tokens are the LAST of the cached positions, so their RoPE positions start at the
number of tokens cached before them (not at 0), and the causal mask is aligned bottom-right
(query i of Lq new ones sits at position Lk - Lq + i). Run token by token, a cached decoder
gives exactly the rows of one causal forward over the whole sequence: that is what it is for.

Grouped-query attention (GQA, Ainslie et al. 2023; Llama 2 70B, Llama 3, Mistral) keeps fewer
key/value heads than query heads to shrink that cache: Hq query heads share Hkv kv heads in
groups of n_rep = Hq / Hkv, and query head h uses kv head h // n_rep (heads 0..n_rep-1 the
first kv head, and so on: repeat_interleave, not repeat). Hkv = Hq is plain multi-head
attention; Hkv = 1 is multi-query attention (MQA, Shazeer 2019).

DecoderSelfAttention is Llama's attention layer (Hugging Face LlamaAttention): projections
without bias, RoPE on q and k in the half-split convention (rotate_half: the pairs are
(x[i], x[i + d/2]), not (x[2i], x[2i+1])), causal GQA, and an output projection.

This file stands alone. You may reuse your earlier exercises through relative imports if you
like (`from .rope import apply_rope` with interleaved=False and positions=...); the grader
loads your workspace as a package, and an unfinished exercise you import is named as such.
Do not call torch's own attention (F.scaled_dot_product_attention, nn.MultiheadAttention):
the point is to write it, and SDPA's is_causal is aligned top-left, wrong for a cache.
"""

import math

import torch
import torch.nn as nn


def repeat_kv(x, n_rep):
    """Repeat each key/value head n_rep times, consecutively, so that Hq query heads find theirs.

    Args:
        x: Tensor [B, Hkv, L, d] of any dtype.
        n_rep: int >= 1, the number of query heads per kv head (Hq / Hkv).

    Returns:
        Tensor [B, Hkv * n_rep, L, d] in x's dtype and on x's device, with
        out[:, h] = x[:, h // n_rep]: kv head j appears at heads j*n_rep .. (j+1)*n_rep - 1
        (= x.repeat_interleave(n_rep, dim=1), as transformers' repeat_kv; NOT x.repeat(1, n_rep, 1, 1),
        which would give head h the kv head h % Hkv). n_rep = 1 gives x's values.

    Raises:
        ValueError: if x is not 4-D or n_rep < 1.
    """
    if x.dim() != 4:
        raise ValueError(f"x must be [B, Hkv, L, d], got shape {list(x.shape)}")
    if n_rep < 1:
        raise ValueError(f"n_rep must be >= 1, got {n_rep}")
    B, Hkv, L, d = x.shape
    # a new axis after the heads, expanded (a view, no copy) then folded into the heads:
    # [B, Hkv, 1, L, d] -> [B, Hkv, n_rep, L, d] -> [B, Hkv * n_rep, L, d]
    return x[:, :, None].expand(B, Hkv, n_rep, L, d).reshape(B, Hkv * n_rep, L, d)


def grouped_query_attention(q, k, v, mask=None, causal=False):
    """Attention in which groups of query heads share one key/value head.

    Args:
        q: float Tensor [B, Hq, Lq, d].
        k: float Tensor [B, Hkv, Lk, d], same dtype as q; Hq must be a multiple of Hkv.
        v: float Tensor [B, Hkv, Lk, dv], same dtype as q.
        mask: None or bool Tensor broadcastable to [B, Hq, Lq, Lk]; True = may attend.
        causal: bool; if True, query i may attend keys j <= Lk - Lq + i (aligned bottom-right:
            the queries are the last Lq of the Lk positions, as after a KV cache), combined with
            mask by AND.

    Returns:
        (out, weights): out [B, Hq, Lq, dv] and weights [B, Hq, Lq, Lk], in q's dtype and on q's
        device, with n_rep = Hq / Hkv, k' = repeat_kv(k, n_rep), v' = repeat_kv(v, n_rep) and
        weights = softmax_j(q·k'ᵀ / sqrt(d), masked entries excluded), out = weights·v'
        (= torch's F.scaled_dot_product_attention(q, k, v, attn_mask=..., enable_gqa=True)).
        For float16/bfloat16 inputs q·kᵀ is taken in the input dtype, the scaling and softmax
        in float32, and the weights are cast back before multiplying v. A query with no allowed
        key gets all-zero weights and out = 0, never NaN. Do not call torch's own attention.

    Raises:
        ValueError: if q, k, v are not 4-D, if k and v differ in batch, heads or length, or if
            Hq is not a multiple of Hkv.
        TypeError: if mask is not a bool tensor.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be [B, H, L, d], got {list(q.shape)}, {list(k.shape)}, {list(v.shape)}")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must agree in batch, heads and length, got {list(k.shape)} and {list(v.shape)}")
    Hq, Hkv = q.shape[1], k.shape[1]
    if Hkv == 0 or Hq % Hkv != 0:
        raise ValueError(f"the query heads ({Hq}) must be a multiple of the kv heads ({Hkv})")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool (True = may attend), got {mask.dtype}")
    k = repeat_kv(k, Hq // Hkv)  # [B, Hq, Lk, d]: query head h uses kv head h // n_rep
    v = repeat_kv(v, Hq // Hkv)  # [B, Hq, Lk, dv]
    Lq, Lk = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1])  # the head width d, not d_model
    logits = q @ k.transpose(-2, -1)  # [B, Hq, Lq, Lk]
    # softmax of half inputs in float32 (as Hugging Face eager and Meta LLaMA do); float64 stays
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) * scale
    if causal:
        q_pos = torch.arange(Lk - Lq, Lk, device=q.device)  # [Lq]: the new queries are the last ones
        k_pos = torch.arange(Lk, device=q.device)  # [Lk]
        causal_m = k_pos[None, :] <= q_pos[:, None]  # [Lq, Lk], bottom-right aligned
        mask = causal_m if mask is None else mask & causal_m
    if mask is not None:
        logits = torch.where(mask, logits, float("-inf"))  # where: mask may have more dims than logits
    # a row with no allowed key is all -inf and softmax would give NaN; give it finite logits
    # for the softmax and zero its weights afterwards
    dead = torch.isneginf(logits).all(dim=-1, keepdim=True)  # [B, Hq, Lq, 1]
    logits = logits.masked_fill(dead, 0.0)
    weights = torch.softmax(logits, dim=-1).masked_fill(dead, 0.0).to(q.dtype)  # [B, Hq, Lq, Lk]
    return weights @ v, weights  # [B, Hq, Lq, dv], [B, Hq, Lq, Lk]


class KVCache:
    """The keys and values of every token seen so far, for one attention layer.

    Created empty (KVCache()); works for any batch size and number of kv heads, fixed by the
    first update. k and v are kept as [B, Hkv, L, d] and [B, Hkv, L, dv] on the device and in
    the dtype of the first update.
    """

    def __init__(self):
        self.k = None  # [B, Hkv, L, d] once updated
        self.v = None  # [B, Hkv, L, dv]

    @property
    def length(self):
        """The number of tokens cached so far: an int, 0 for a new cache."""
        return 0 if self.k is None else self.k.shape[-2]

    def update(self, k, v):
        """Append new keys and values along the length dimension and return all of them.

        Args:
            k: Tensor [B, Hkv, Ln, d], the new tokens' keys (Ln >= 1).
            v: Tensor [B, Hkv, Ln, dv], their values.

        Returns:
            (k_all, v_all): [B, Hkv, length, d] and [B, Hkv, length, dv], every key and value
            cached so far in order, the new ones last (torch.cat along dim -2); length grows by
            Ln. The inputs are not modified.

        Raises:
            ValueError: if k or v is not 4-D, if k and v differ in batch, heads or length, or if
                B, Hkv, d or dv differ from those of the first update.
        """
        if k.dim() != 4 or v.dim() != 4:
            raise ValueError(f"k and v must be [B, Hkv, L, d], got {list(k.shape)} and {list(v.shape)}")
        if k.shape[:3] != v.shape[:3]:
            raise ValueError(f"k and v must agree in batch, heads and length, got {list(k.shape)} and {list(v.shape)}")
        if self.k is None:
            self.k, self.v = k, v
            return self.k, self.v
        (B, H, _, d), dv = self.k.shape, self.v.shape[-1]
        if (k.shape[0], k.shape[1], k.shape[3], v.shape[3]) != (B, H, d, dv):
            raise ValueError(f"the cache holds batch {B}, {H} heads, width {d} (values {dv}); the update has "
                             f"k {list(k.shape)} and v {list(v.shape)}")
        self.k = torch.cat([self.k, k], dim=-2)  # [B, Hkv, L_old + Ln, d]
        self.v = torch.cat([self.v, v], dim=-2)  # [B, Hkv, L_old + Ln, dv]
        return self.k, self.v


class DecoderSelfAttention(nn.Module):
    """Llama's causal self-attention with RoPE, grouped-query heads and an optional KV cache.

    Args:
        d_model: int D >= 1, the model width.
        n_heads: int H >= 1 dividing D; each head has width d = D / H, which must be even (RoPE).
        n_kv_heads: int Hkv >= 1 dividing H, or None for H (multi-head); 1 is multi-query.
        rope_base: float, the RoPE base.

    Submodules (their state_dict keys are fixed; the grader loads weights by these names; the
    module has no other parameters and no persistent buffers):
        q_proj: nn.Linear(D, H * d, bias=False)
        k_proj, v_proj: nn.Linear(D, Hkv * d, bias=False)
        o_proj: nn.Linear(H * d, D, bias=False)

    Raises:
        ValueError: if D % H != 0, if d is odd, or if H % Hkv != 0.
    """

    def __init__(self, d_model, n_heads, n_kv_heads=None, rope_base=10000.0):
        super().__init__()
        n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        if n_heads < 1 or d_model % n_heads != 0:
            raise ValueError(f"d_model must be divisible by n_heads, got {d_model} and {n_heads}")
        if (d_model // n_heads) % 2 != 0:
            raise ValueError(f"the head width d_model / n_heads = {d_model // n_heads} must be even for RoPE")
        if n_kv_heads < 1 or n_heads % n_kv_heads != 0:
            raise ValueError(f"n_heads must be a multiple of n_kv_heads, got {n_heads} and {n_kv_heads}")
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.rope_base = rope_base
        self.q_proj = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, d_model, bias=False)

    def forward(self, x, cache=None):
        """Causal self-attention of the L new tokens x over themselves and the cached ones.

        Args:
            x: float Tensor [B, L, D], the new tokens.
            cache: None (x is the whole sequence, positions 0 .. L-1) or a KVCache holding the
                P = cache.length earlier tokens of these B sequences; it is updated in place with
                the new tokens' keys and values (after RoPE), so the next call continues after them.

        Returns:
            Tensor [B, L, D] in x's dtype and on x's device:
            o_proj(merge_heads(grouped_query_attention(rope(q), rope(k_all), v_all, causal=True))),
            with q = q_proj(x) split into H heads and k, v = k_proj(x), v_proj(x) into Hkv heads
            ([B, L, H, d] -> [B, H, L, d]); rope rotates each pair (x[i], x[i + d/2]) of a head
            by position · base^(-2i/d) at positions P, P+1, .., P+L-1:
            rope(x) = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2])
            and cos, sin = cos, sin of cat(angles, angles), computed in float32 and cast to x's
            dtype (Hugging Face Llama); v is not rotated. Decoding a sequence in any chunks with
            one cache gives the rows of forward(whole sequence) without one.
        """
        B, L, D = x.shape
        H, Hkv, d = self.n_heads, self.n_kv_heads, self.head_dim
        # split heads: [B, L, H*d] -> [B, L, H, d] -> [B, H, L, d]
        q = self.q_proj(x).view(B, L, H, d).transpose(1, 2)  # [B, H, L, d]
        k = self.k_proj(x).view(B, L, Hkv, d).transpose(1, 2)  # [B, Hkv, L, d]
        v = self.v_proj(x).view(B, L, Hkv, d).transpose(1, 2)  # [B, Hkv, L, d]

        # RoPE at the new tokens' absolute positions: they follow the P cached ones
        past = 0 if cache is None else cache.length
        positions = torch.arange(past, past + L, device=x.device)  # [L]
        inv_freq = 1.0 / self.rope_base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)  # [d/2]
        angles = positions.float()[:, None] * inv_freq[None, :]  # [L, d/2]
        freqs_cis = torch.polar(torch.ones_like(angles), angles)  # [L, d/2] complex, Meta LLaMA style
        q = torch.view_as_real(torch.view_as_complex(q.float().reshape(B, H, L, d // 2, 2)) * freqs_cis)
        q = q.flatten(-2).to(x.dtype)
        k = torch.view_as_real(torch.view_as_complex(k.float().reshape(B, Hkv, L, d // 2, 2)) * freqs_cis)
        k = k.flatten(-2).to(x.dtype)

        if cache is not None:
            k, v = cache.update(k, v)  # [B, Hkv, P + L, d]: rotated keys are cached, never re-rotated
        out, _ = grouped_query_attention(q, k, v, causal=True)  # [B, H, L, d], bottom-right causal

        # merge heads: [B, H, L, d] -> [B, L, H, d] -> [B, L, H*d]
        out = out.transpose(1, 2).reshape(B, L, H * d)
        return self.o_proj(out)
