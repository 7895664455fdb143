"""Mistake: u (r_w_bias) left out: the content term should be (q + u)·kᵀ with u = r_w_bias; yours is q·kᵀ.
Caught by: test_content_bias

xl — relative attention of Transformer-XL and XLNet (Dai et al. 2019; Yang et al. 2019).

Transformer-XL attends over a memory of cached hidden states followed by the current segment,
so absolute positions would clash between segments. It encodes only how far back a key is,
the distance q_pos(i) - j from query i to key j, with a sinusoid R of that distance, and
splits the logit into four terms (section 3.3 of the paper):

    A_ij = (q_i + u) · k_j          content: q·k, plus a global content bias u  (r_w_bias)
         + (q_i + v) · r_{i-j}      position: q·R_{i-j} W_r, plus a global position bias v (r_r_bias)
    weights = softmax_j(A_ij / sqrt(d)),  out_i = sum_j weights_ij v_j

Keys are the memory then the segment: Lk = mlen + Lq, and query i sits at q_pos(i) = mlen + i
(the last Lq positions, as with a KV cache). Computing (q_i + v)·r for every (i, j) pair would
gather an [Lq, Lk, d] table; instead both papers multiply q by ONE sequence of embeddings,
for the distances Lk, Lk - 1, ..., -Lq + 1 (XLNet's pos_seq = arange(klen, -qlen, -1); Lk + Lq
of them), and then shift each row so that column j lines up with distance q_pos(i) - j:

    rel_shift(x, klen)[..., i, j] = x[..., i, j + qlen - i]

Worked example, qlen = 2, mlen = 1, klen = 3: the columns of x hold distances [3, 2, 1, 0, -1];
query 0 sits at position 1 and needs distances [1, 0, -1] (columns 2, 3, 4), query 1 sits at
position 2 and needs [2, 1, 0] (columns 1, 2, 3):

    x (distances):  [[3, 2, 1, 0, -1],       rel_shift(x, 3):  [[1, 0, -1],
                     [3, 2, 1, 0, -1]]                          [2, 1, 0]]

The shift needs no index tensor: view x's memory [qlen, klen + qlen] as [klen + qlen, qlen],
drop the first row (qlen elements), view the rest as [qlen, klen + qlen - 1] and keep the first
klen columns. Each row starts one element earlier than the row before: that is the shift.

The sinusoid is Transformer-XL's and XLNet's PositionalEmbedding: all sines, then all cosines,

    xl_positional_embedding(pos_seq, inv_freq) = cat(sin(pos_seq ⊗ inv_freq), cos(pos_seq ⊗ inv_freq))
    inv_freq = 1 / 10000^(arange(0, d, 2) / d)

which is NOT the interleaved layout of Vaswani et al. (sin and cos in alternating columns).

Who uses what:
  * Transformer-XL (kimiyoung/transformer-xl `mem_transformer.py`): pos_seq = klen - 1 .. 0 (no
    negative distances; a causal mask hides the future), a zero column padded before the shift.
  * XLNet (Hugging Face `XLNetRelativeAttention.rel_shift_bnij`, `rel_attn_core`,
    `XLNetModel.relative_positional_encoding`): pos_seq = klen .. -qlen + 1, bidirectional. This
    exercise follows XLNet: layout [B, H, Lq, Lk] and r [H, Lk + Lq, d].
  * r is R projected per head (W_r, no bias); u and v are learned [H, d] parameters, the same
    for every query: they let a head prefer some keys or some distances whatever the query's
    own content.

Pitfalls:
  * shifting by qlen - 1 - i (Transformer-XL's klen - 1 .. 0 distances with XLNet's shift) or by
    +i (the wrong direction): every position term is off, nothing crashes;
  * forgetting the final slice: the shift leaves klen + qlen - 1 columns, only klen are keys;
  * putting u on the position term and v on the content term, or both on one term;
  * scaling only the content term: the whole logit (AC + BD) is divided by sqrt(d);
  * interleaving sin and cos, or writing cos first;
  * a row with every key masked: softmax of only -inf is NaN; it must give zeros.
"""

import math

import torch


def xl_positional_embedding(pos_seq, inv_freq):
    """The sinusoid of each relative distance, sines first (Transformer-XL, XLNet).

    Args:
        pos_seq: 1-D Tensor [L] of distances, float or integer (XLNet: arange(klen, -qlen, -1)).
        inv_freq: 1-D float Tensor [d/2] of frequencies, usually 1 / 10000^(arange(0, d, 2) / d),
            on pos_seq's device.

    Returns:
        Tensor [L, d] (d = 2 * len(inv_freq)) on pos_seq's device, in the dtype of
        pos_seq * inv_freq (torch's promotion: integer distances take inv_freq's dtype), with
        angle = pos_seq[:, None] * inv_freq[None, :] and out = cat(sin(angle), cos(angle), dim=-1):
        column c < d/2 is sin(pos * inv_freq[c]), column d/2 + c is cos(pos * inv_freq[c])
        (XLNet's positional_embedding without its batch dimension).

    Raises:
        ValueError: if pos_seq or inv_freq is not 1-D, or inv_freq is not a float tensor.
    """
    if pos_seq.dim() != 1:
        raise ValueError(f"pos_seq must be 1-D [L], got shape {list(pos_seq.shape)}")
    if inv_freq.dim() != 1 or not inv_freq.is_floating_point():
        raise ValueError(f"inv_freq must be a 1-D float tensor [d/2], got {inv_freq.dtype} {list(inv_freq.shape)}")
    angle = pos_seq[:, None] * inv_freq[None, :]  # [L, d/2], outer product
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)  # [L, d]: all sines, then all cosines


def rel_shift(x, klen):
    """Align position scores by distance: row i is shifted so column j holds distance q_pos(i) - j.

    Args:
        x: Tensor [..., qlen, klen + qlen] of any dtype: x[..., i, c] is a score of query i
            against the embedding of distance klen - c (columns = distances klen, klen - 1, ...,
            -qlen + 1, XLNet's pos_seq).
        klen: int >= 0, the number of keys (memory length + qlen).

    Returns:
        Tensor [..., qlen, klen] in x's dtype and on x's device with
        out[..., i, j] = x[..., i, j + qlen - i], the score at distance (klen - qlen + i) - j
        (query i sits at position klen - qlen + i). Every entry is a real score (no padding
        garbage), exactly XLNet's rel_shift_bnij. x is not modified.

    Raises:
        ValueError: if x has fewer than 2 dims, klen < 0, or x's last dim is not klen + qlen.
    """
    if x.dim() < 2:
        raise ValueError(f"x must be [..., qlen, klen + qlen], got shape {list(x.shape)}")
    qlen, width = x.shape[-2], x.shape[-1]
    if klen < 0 or width != klen + qlen:
        raise ValueError(f"x must have klen + qlen = {klen} + {qlen} columns, got shape {list(x.shape)}")
    lead = x.shape[:-2]
    if qlen == 0:
        return x[..., :klen]  # [..., 0, klen]: nothing to shift
    # the same memory read as [klen + qlen, qlen]; dropping its first row drops qlen elements, so
    # read back as rows of klen + qlen - 1, row i starts qlen - i elements further into x's row i
    x = x.reshape(*lead, width, qlen)[..., 1:, :]  # [..., klen + qlen - 1, qlen]
    x = x.reshape(*lead, qlen, width - 1)  # [..., qlen, klen + qlen - 1]
    return x[..., :klen]  # [..., qlen, klen]: the keys; the columns after them are other distances


def xl_relative_attention(q, k, v, r, r_w_bias, r_r_bias, mask=None):
    """Transformer-XL / XLNet relative attention over a memory and the current segment.

    Args:
        q: float Tensor [B, H, Lq, d] (any leading dims before H that broadcast with k's).
        k: float Tensor [B, H, Lk, d], same dtype; Lk = mlen + Lq keys, the memory first, so
            query i sits at position Lk - Lq + i.
        v: float Tensor [B, H, Lk, dv], same dtype.
        r: float Tensor [H, Lk + Lq, d], same dtype: the relative embeddings projected per head,
            row c for distance Lk - c (distances Lk .. -Lq + 1); leading dims broadcast with q's,
            so [B, H, Lk + Lq, d] works too.
        r_w_bias: float Tensor [H, d], u, the content bias, added to q for the content term.
        r_r_bias: float Tensor [H, d], v, the position bias, added to q for the position term.
        mask: None or bool Tensor broadcastable to [B, H, Lq, Lk]; True = may attend.

    Returns:
        (out, weights): out [B, H, Lq, dv] and weights [B, H, Lq, Lk], in q's dtype on q's device:
        logits = ((q + u)·kᵀ + rel_shift((q + v)·rᵀ, Lk)) / sqrt(d), with u, v broadcast over
        batch and queries ([H, 1, d]); weights = softmax over the allowed keys; out = weights·v.
        Both terms are taken in q's dtype; the scaling and softmax run in float32 for
        float16/bfloat16 inputs, then the weights are cast back. A query row with no allowed key
        gets all-zero weights and out = 0, never NaN.

    Raises:
        ValueError: if the widths of q, k, r or the biases differ, k and v lengths differ, r does
            not have Lk + Lq rows, a bias is not [H, d], or mask does not broadcast to the logits.
        TypeError: if mask is not a bool tensor.
    """
    if q.dim() < 3:
        raise ValueError(f"q must be [B, H, Lq, d], got shape {list(q.shape)}")
    n_head, len_q, d = q.shape[-3], q.shape[-2], q.shape[-1]
    len_k = k.shape[-2]
    if k.shape[-1] != d:
        raise ValueError(f"q and k must have the same last dim d, got q {list(q.shape)} and k {list(k.shape)}")
    if v.shape[-2] != len_k:
        raise ValueError(f"k and v must have the same length Lk, got k {list(k.shape)} and v {list(v.shape)}")
    if r.dim() < 2 or r.shape[-2] != len_k + len_q or r.shape[-1] != d:
        raise ValueError(f"r must be [H, Lk + Lq, d] = {[n_head, len_k + len_q, d]}, got {list(r.shape)}")
    for name, bias in (("r_w_bias", r_w_bias), ("r_r_bias", r_r_bias)):
        if tuple(bias.shape) != (n_head, d):
            raise ValueError(f"{name} must be [H, d] = {[n_head, d]}, got {list(bias.shape)}")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")

    u = r_w_bias[:, None, :]  # [H, 1, d]: one content bias per head, shared by every query
    v_r = r_r_bias[:, None, :]  # [H, 1, d]: one position bias per head (the paper's v)
    ac = q @ k.transpose(-2, -1)  # [B, H, Lq, Lk], content term
    bd = (q + v_r) @ r.transpose(-2, -1)  # [B, H, Lq, Lk + Lq], against every distance Lk .. -Lq + 1
    bd = rel_shift(bd, len_k)  # [B, H, Lq, Lk], column j now holds distance q_pos(i) - j
    logits = ac + bd
    if mask is not None and (mask.dim() > logits.dim() or any(
            m not in (1, n) for m, n in zip(reversed(mask.shape), reversed(logits.shape)))):
        raise ValueError(f"mask {list(mask.shape)} does not broadcast to the logits {list(logits.shape)}")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # softmax in >= float32
    logits = logits / math.sqrt(d)  # the whole logit, both terms
    if mask is not None:
        # finfo.min, not -inf: a row with no allowed key stays finite (uniform) instead of NaN,
        # and is zeroed just below
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    weights = torch.softmax(logits, dim=-1)  # [B, H, Lq, Lk], over the keys
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # also turns a fully masked row into zeros
    weights = weights.to(q.dtype)
    return weights @ v, weights  # [B, H, Lq, dv], [B, H, Lq, Lk]
