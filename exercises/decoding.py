"""decoding — a decoder's self-attention step with a KV cache and grouped-query attention.

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
    raise NotImplementedError


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
    raise NotImplementedError


class KVCache:
    """The keys and values of every token seen so far, for one attention layer.

    Created empty (KVCache()); works for any batch size and number of kv heads, fixed by the
    first update. k and v are kept as [B, Hkv, L, d] and [B, Hkv, L, dv] on the device and in
    the dtype of the first update.
    """

    def __init__(self):
        raise NotImplementedError

    @property
    def length(self):
        """The number of tokens cached so far: an int, 0 for a new cache."""
        raise NotImplementedError

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
        raise NotImplementedError


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
        raise NotImplementedError

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
        raise NotImplementedError
