"""Mistake: m, l and acc are kept in the input dtype (bfloat16), so small terms are lost
Caught by: test_accumulates_in_float32

flash — attention in tiles with an online softmax (FlashAttention's forward pass).

Plain attention builds the whole [Lq, Lk] matrix of logits, softmaxes it and multiplies it by
v: O(Lq·Lk) memory, 64 MB per (batch, head) at 4096 tokens in float32. FlashAttention (Dao et
al. 2022, 2023) gets the same output without it: it walks over the keys in blocks and keeps,
per query, three running quantities (the online softmax of Milakov & Gimelshein 2018):

    m    the largest scaled logit seen so far                       [..., Lq]
    l    the sum of exp(logit - m) over the keys seen so far        [..., Lq]
    acc  the sum of exp(logit - m) · v over the keys seen so far    [..., Lq, d]

For the next block of keys, with scaled logits s [..., Lq, Bk] and values v_block [..., Bk, d]:

    m_new = max(m, rowmax(s))
    p     = exp(s - m_new)                              # this block's weights, unnormalised
    l     = exp(m - m_new) · l   + rowsum(p)            # old terms rescaled to the new max
    acc   = exp(m - m_new) · acc + p @ v_block
    m     = m_new

and once every key has been seen: out = acc / l, lse = m + log(l). Subtracting the running max
keeps every exp() <= 1, so nothing overflows; when the max grows, everything summed so far was
relative to the old max and must be multiplied by exp(m_old - m_new) (< 1) to stay consistent.
Dividing by l only once, at the end, is FlashAttention-2's order (fewer divisions, and acc is
never renormalised block by block).

A whole block can be masked (causal attention, the first blocks of a query that sits before
every key): its logits are all -inf, and so is m while nothing has been allowed yet. Then
exp(s - m_new) = exp(-inf - (-inf)) = NaN. The kernels handle it by using 0 in place of an
m_new of -inf in the exponents: exp(-inf - 0) = 0, so such a row just stays at l = 0, acc = 0.
A query that never sees an allowed key ends with l = 0: its output is 0 and its lse is -inf.

Worked example, one query, d = 1, scaled logits [0, ln 3] in two blocks of one key, v = [10, 20]:
block 1: m = 0, l = 1, acc = 10; block 2: m = ln 3, l = 1/3 + 1 = 4/3, acc = 10/3 + 20 = 70/3;
out = (70/3) / (4/3) = 17.5 (= 0.25·10 + 0.75·20), lse = ln 3 + ln(4/3) = ln 4.

Causal attention here is aligned bottom-right, as with a KV cache: the Lq queries are the last
Lq of the Lk positions, so query i sits at position Lk - Lq + i and sees keys j <= Lk - Lq + i
(torch.nn.attention.bias.causal_lower_right; NOT F.scaled_dot_product_attention's is_causal,
which is aligned top-left). Do not call torch's own attention, and never build a tensor of
[..., Lq, Lk] logits or masks: the grader measures the memory your function uses at 4096 tokens.
"""

import math

import torch


def online_softmax_update(m, l, acc, scores, v_block):
    """One step of the online softmax: fold one block of keys into the running state.

    Args:
        m: float32 Tensor [..., Lq], the running max of the scaled logits; -inf where no
            allowed key has been seen yet (the start value).
        l: float32 Tensor [..., Lq], the running sum of exp(logit - m); 0 at the start.
        acc: float32 Tensor [..., Lq, dv], the running sum of exp(logit - m) · v; 0 at the start.
        scores: float32 Tensor [..., Lq, Bk], this block's scaled logits q·kᵀ / sqrt(d), -inf
            where a key is masked (a row may be all -inf).
        v_block: float Tensor [..., Bk, dv] of any float dtype, this block's values (used in
            acc's dtype).
        m, l, acc and scores share acc's dtype (float32, or float64 for float64 attention);
        the leading dims "..." are the same for all five.

    Returns:
        (m_new, l_new, acc_new), new tensors in acc's dtype and device, shapes as m, l, acc:
            m_new   = max(m, rowmax(scores))
            p       = exp(scores - m_new)                        [..., Lq, Bk]
            l_new   = exp(m - m_new) · l   + rowsum(p)
            acc_new = exp(m - m_new) · acc + p @ v_block
        where a row with m_new = -inf (no allowed key so far, here or before) uses 0 instead
        of m_new in both exponents, so it keeps l = 0 and acc = 0, never NaN. The inputs are
        not modified.

    Raises:
        nothing of its own; mismatched shapes fail in the tensor operations.
    """
    m_new = torch.maximum(m, scores.amax(dim=-1))  # [..., Lq]
    # a row that has seen no allowed key keeps m_new = -inf; exp(-inf - (-inf)) would be NaN,
    # so such rows subtract 0 instead: exp(-inf - 0) = 0, and l, acc stay 0
    m_safe = torch.where(torch.isneginf(m_new), 0.0, m_new)  # [..., Lq]
    alpha = torch.exp(m - m_safe)  # [..., Lq], rescales what was summed relative to the old max
    p = torch.exp(scores - m_safe[..., None])  # [..., Lq, Bk], every entry <= 1
    l_new = alpha * l + p.sum(dim=-1)  # [..., Lq]
    acc_new = alpha[..., None] * acc + p @ v_block.to(acc.dtype)  # [..., Lq, dv]
    return m_new, l_new, acc_new


def flash_attention(q, k, v, causal=False, block_size=64):
    """Softmax attention computed block by block, without the [Lq, Lk] matrix of logits.

    Args:
        q: float Tensor [B, H, Lq, d] (float16, bfloat16, float32 or float64).
        k: float Tensor [B, H, Lk, d], same dtype and device as q.
        v: float Tensor [B, H, Lk, dv], same dtype and device as q.
        causal: bool; if True, query i may attend keys j <= Lk - Lq + i (aligned bottom-right:
            the queries are the last Lq of the Lk positions). With Lq > Lk the first Lq - Lk
            queries sit before every key.
        block_size: int >= 1; queries and keys are processed in blocks of this many (the last
            block may be shorter: block_size need not divide Lq or Lk).

    Returns:
        (out, lse), on q's device:
        out: [B, H, Lq, dv] in q's dtype, equal to softmax_j(q·kᵀ / sqrt(d), masked keys
            excluded) · v with d = q.shape[-1];
        lse: float32 [B, H, Lq], the logsumexp over the allowed keys of each query's scaled
            logits, log Σ_j exp(q_i·k_j / sqrt(d)) (natural log, what the backward pass needs).
        A query with no allowed key gets out = 0 and lse = -inf, never NaN.

    How: for each block of block_size queries, walk over the blocks of keys it may see and fold
    each into (m, l, acc) with online_softmax_update; divide by l once, at the end:
    out = acc / l, lse = m + log(l). Compute in float32 (float64 for float64 inputs): cast each
    block of q, k, v to it before q·kᵀ and p·v, keep m, l, acc in it, and cast out back to q's
    dtype only at the end (a half-precision running sum loses keys: in bfloat16, 256 + 1 = 256).
    Memory: at most one [B, H, block_size, block_size] tile of logits (and its exp) is alive at
    a time; never build a [..., Lq, Lk] tensor (logits, weights or a mask), and do not call
    torch's own attention. The grader measures the peak memory of a call at 4096 tokens: it must
    stay within 2x the reference's plus 4 MB.

    Raises:
        ValueError: if q, k, v are not 4-D, if k and v differ in batch, heads or length, if q and
            k differ in batch, heads or width d, or if block_size < 1.
    """
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D [B, H, L, d], got {q.dim()}-D, {k.dim()}-D, {v.dim()}-D")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must match in batch, heads and length, got {tuple(k.shape)} and {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must match in batch, heads and width d, got {tuple(q.shape)} and {tuple(k.shape)}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    B, H, Lq, d = q.shape
    Lk, dv = k.shape[-2], v.shape[-1]
    acc_dtype = q.dtype  # float32 for half inputs, float64 stays
    scale = 1.0 / math.sqrt(d)
    out = torch.empty(B, H, Lq, dv, dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, Lq, dtype=torch.float32, device=q.device)
    shift = Lk - Lq  # query i sits at absolute position shift + i (bottom-right alignment)
    for i0 in range(0, Lq, block_size):
        i1 = min(i0 + block_size, Lq)
        q_blk = q[:, :, i0:i1].to(acc_dtype)  # [B, H, Bq, d]
        m = torch.full((B, H, i1 - i0), float("-inf"), dtype=acc_dtype, device=q.device)  # [B, H, Bq]
        l = torch.zeros(B, H, i1 - i0, dtype=acc_dtype, device=q.device)  # [B, H, Bq]
        acc = torch.zeros(B, H, i1 - i0, dv, dtype=acc_dtype, device=q.device)  # [B, H, Bq, dv]
        # causal: the block's last query sees keys up to shift + i1 - 1; later key blocks are all masked
        k_end = min(Lk, shift + i1) if causal else Lk
        for j0 in range(0, max(k_end, 0), block_size):
            j1 = min(j0 + block_size, Lk)
            scores = (q_blk @ k[:, :, j0:j1].to(acc_dtype).transpose(-2, -1)) * scale  # [B, H, Bq, Bk]
            if causal and j1 - 1 > shift + i0:  # some key in the tile lies after some query
                q_pos = torch.arange(shift + i0, shift + i1, device=q.device)  # [Bq]
                k_pos = torch.arange(j0, j1, device=q.device)  # [Bk]
                scores = scores.masked_fill(k_pos[None, :] > q_pos[:, None], float("-inf"))
            m, l, acc = online_softmax_update(m, l, acc, scores, v[:, :, j0:j1])
        # divide once, at the end; a query with no allowed key has l = 0 and gets 0, not 0/0
        seen = l > 0
        out[:, :, i0:i1] = torch.where(seen[..., None], acc / torch.where(seen, l, 1.0)[..., None], 0.0).to(q.dtype)
        lse[:, :, i0:i1] = torch.where(seen, m + torch.log(torch.where(seen, l, 1.0)), float("-inf")).float()
    return out, lse
