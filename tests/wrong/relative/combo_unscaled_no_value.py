"""Mistake: the relative term q·rel_kᵀ is added unscaled AND the rel_v value term is left out (two at once)
Names: rel_k_unscaled, missing_value_term
Caught by: test_value_term

A wrong implementation with several mistakes in one function, as learners write them (issue 14).

relative — attention that sees how far apart two tokens are, not where they are.

Shaw, Uszkoreit & Vaswani (2018) give every clipped distance j - i (key minus query) two
learned vectors, aK for the keys and aV for the values, shared by all heads:

    idx[i, j] = clamp(j - q_pos(i), -K, K) + K           (K = max_distance, table of 2K + 1 rows)
    e_ij      = (q_i · k_j + q_i · aK[idx[i, j]]) / sqrt(d)
    w_ij      = softmax_j(e_ij)
    o_i       = sum_j w_ij v_j + sum_j w_ij aV[idx[i, j]]

Query i sits at q_pos(i) = len_k - len_q + i: with fewer queries than keys (a KV cache)
the queries are the LAST len_q positions, as in tensor2tensor's cached decoding and as in
this kit's causal_mask and alibi_bias.

Worked example, len_q = len_k = 4, max_distance = 2 (row = query i, column = key j):

    j - i:   0  1  2  3        idx:  2  3  4  4
            -1  0  1  2              1  2  3  4
            -2 -1  0  1              0  1  2  3
            -3 -2 -1  0              0  0  1  2

Index K = 2 is distance 0; distances beyond +-2 share the end rows. With len_q = 2, len_k = 4
the two queries sit at positions 2 and 3, so the result is the last two rows above.

T5 (Raffel et al. 2020) instead puts each distance n = key - query into one of
num_buckets buckets, exact for small |n| and logarithmically wider up to max_distance, and
adds a learned scalar per (bucket, head) to the logits. Bidirectional (encoder): keys after
the query use the upper half of the buckets. With the defaults (32 buckets, 128):
n = -1 -> 1, n = +1 -> 17, n = -8 -> 8, n = +8 -> 24, |n| >= 128 -> 15 / 31.

Who uses what:
  * Shaw / tensor2tensor (`_generate_relative_positions_matrix`, `_relative_attention_inner`):
    key minus query, clip to [-K, K], shared tables for keys and values, q pre-scaled by
    1/sqrt(d), so the relative key term is scaled too. This is what this exercise asks for.
  * T5 / mT5 / Flan-T5 (Hugging Face `T5Attention._relative_position_bucket`): buckets of
    key minus query, a bias per head, no 1/sqrt(d) at all.
  * Old Hugging Face BERT "relative_key" used query minus key (the mirror image) and no clip.

Pitfalls:
  * the sign: j - i, not i - j (the table comes out mirrored and nothing crashes);
  * clipping to K - 1, or a table of 2K rows: the table has 2K + 1 rows, index K is distance 0;
  * forgetting the value term sum_j w_ij aV_ij;
  * aligning the queries with the first keys when len_q < len_k;
  * dividing only q·k by sqrt(d) but not q·aK;
  * building a [B, H, Lq, Lk, d] tensor of q_i * aK_ij: contract over d with einsum instead;
  * T5: forgetting to halve num_buckets in bidirectional mode (buckets out of range).
"""

import math

import torch
import torch.nn as nn


def relative_position_index(len_q, len_k, max_distance, device=None):
    """Row index into a relative-position table for every (query, key) pair.

    Args:
        len_q: int Lq >= 0, the number of queries.
        len_k: int Lk >= 0, the number of keys. Query i sits at position len_k - len_q + i
            (the last Lq positions); len_q > len_k is allowed, the first queries then sit at
            negative positions and the same formula applies.
        max_distance: int K >= 0, the largest distance told apart; farther ones are clipped.
        device: where to create the result (None = the CPU).

    Returns:
        LongTensor [Lq, Lk] with values in 0 .. 2K:
        idx[i, j] = clamp(j - (len_k - len_q + i), -K, K) + K.

    Raises:
        ValueError: if len_q, len_k or max_distance is negative.
    """
    if len_q < 0 or len_k < 0:
        raise ValueError(f"len_q and len_k must be >= 0, got len_q={len_q}, len_k={len_k}")
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    q_pos = torch.arange(len_k - len_q, len_k, dtype=torch.long, device=device)  # [Lq], the last Lq positions
    k_pos = torch.arange(len_k, dtype=torch.long, device=device)  # [Lk]
    distance = k_pos[None, :] - q_pos[:, None]  # [Lq, Lk], key minus query
    return distance.clamp(-max_distance, max_distance) + max_distance  # shift so index K is distance 0


class RelativePositionEmbedding(nn.Module):
    """One learned vector per clipped relative distance (Shaw et al.'s aK or aV table).

    Args:
        num_units: int >= 1, the width of each vector (the head width d; one table is
            shared by all heads).
        max_distance: int K >= 0, distances are clipped to [-K, K].

    Its one parameter is `weight` [2K + 1, num_units], xavier-uniform initialised (the
    glorot_uniform default of tensor2tensor's tf.get_variable); row K is distance 0.
    """

    def __init__(self, num_units, max_distance):
        super().__init__()
        if num_units < 1:
            raise ValueError(f"num_units must be >= 1, got {num_units}")
        if max_distance < 0:
            raise ValueError(f"max_distance must be >= 0, got {max_distance}")
        self.num_units = num_units
        self.max_distance = max_distance
        self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, num_units))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, len_q, len_k):
        """The table gathered for every (query, key) pair.

        Args:
            len_q: int Lq >= 0, the number of queries (the last Lq of the Lk positions).
            len_k: int Lk >= 0, the number of keys.

        Returns:
            Tensor [Lq, Lk, num_units] in weight's dtype, on weight's device:
            out[i, j] = weight[relative_position_index(len_q, len_k, K)[i, j]];
            gradients reach `weight`.

        Raises:
            ValueError: if len_q or len_k is negative.
        """
        idx = relative_position_index(len_q, len_k, self.max_distance, device=self.weight.device)  # [Lq, Lk]
        return self.weight[idx]  # [Lq, Lk, num_units]


def relative_attention(q, k, v, rel_k, rel_v=None, mask=None):
    """Scaled dot-product attention with Shaw et al.'s relative key and value terms.

    Args:
        q: float Tensor [B, H, Lq, d] (any number of leading dims that broadcast with k, v).
        k: float Tensor [B, H, Lk, d], same dtype as q.
        v: float Tensor [B, H, Lk, dv], same dtype as q.
        rel_k: Tensor [Lq, Lk, d] in q's dtype, the key-side table gathered per pair
            (RelativePositionEmbedding(d, K)(Lq, Lk)); shared by every batch row and head.
        rel_v: None or Tensor [Lq, Lk, dv] in q's dtype, the value-side table; None leaves out
            the value term.
        mask: None or bool Tensor broadcastable to [B, H, Lq, Lk]; True = may attend.

    Returns:
        (out, weights): out [B, H, Lq, dv] and weights [B, H, Lq, Lk], both in q's dtype, with
        weights = softmax_j((q·kᵀ + q·rel_kᵀ) / sqrt(d)) over the allowed keys and
        out = weights·v + weights·rel_v. The softmax runs in float32 for float16/bfloat16
        inputs. A query row with no allowed key gets all-zero weights (and out = 0), never NaN.

    Raises:
        ValueError: if q and k widths differ, k and v lengths differ, rel_k is not
            [Lq, Lk, d], rel_v is not [Lq, Lk, dv], or mask is not a bool tensor that
            broadcasts to [..., Lq, Lk].
    """
    len_q, d = q.shape[-2], q.shape[-1]
    len_k, d_v = k.shape[-2], v.shape[-1]
    if k.shape[-1] != d:
        raise ValueError(f"q and k must have the same last dim d, got q {list(q.shape)} and k {list(k.shape)}")
    if v.shape[-2] != len_k:
        raise ValueError(f"k and v must have the same length Lk, got k {list(k.shape)} and v {list(v.shape)}")
    if tuple(rel_k.shape) != (len_q, len_k, d):
        raise ValueError(f"rel_k must be [Lq, Lk, d] = {[len_q, len_k, d]}, got {list(rel_k.shape)}")
    if rel_v is not None and tuple(rel_v.shape) != (len_q, len_k, d_v):
        raise ValueError(f"rel_v must be [Lq, Lk, dv] = {[len_q, len_k, d_v]}, got {list(rel_v.shape)}")
    if mask is not None and mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor (True = may attend), got {mask.dtype}")

    # e_ij = q_i·k_j + q_i·aK_ij. The einsum contracts d for each query row against that row's
    # [Lk, d] slice of rel_k, so no [B, H, Lq, Lk, d] tensor is ever built.
    logits = q @ k.transpose(-2, -1) / math.sqrt(d)  # [B, H, Lq, Lk]
    # the mask must broadcast to the logits without growing them (checked by hand: the first
    # torch.broadcast_shapes call imports sympy, ~0.4 s)
    if mask is not None and (mask.dim() > logits.dim() or any(
            m not in (1, n) for m, n in zip(reversed(mask.shape), reversed(logits.shape)))):
        raise ValueError(f"mask {list(mask.shape)} does not broadcast to the logits {list(logits.shape)}")
    logits = logits + torch.einsum("...qd,qkd->...qk", q, rel_k)  # [B, H, Lq, Lk]
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # softmax in >= float32
    if mask is not None:
        # finfo.min, not -inf: a row with no allowed key stays finite (uniform) instead of NaN,
        # and is zeroed just below
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    weights = torch.softmax(logits, dim=-1)  # [B, H, Lq, Lk]
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # also turns a fully masked row into zeros
    weights = weights.to(q.dtype)

    out = weights @ v  # [B, H, Lq, dv]
    return out, weights


def t5_relative_position_bucket(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """T5's bucket of each relative position (key minus query), exactly as Hugging Face computes it.

    Args:
        relative_position: integer Tensor of any shape, memory_position - query_position
            (key minus query: positive = the key comes after the query).
        bidirectional: bool. True (encoder): half of the buckets for n <= 0, half for n > 0.
            False (decoder): n > 0 is treated as 0 (a causal model never sees the future).
        num_buckets: int, the number of buckets; >= 4 when bidirectional, >= 2 otherwise.
        max_distance: int, distances |n| >= max_distance share the last bucket; must be larger
            than max_exact (below).

    Returns:
        LongTensor like relative_position, values in 0 .. num_buckets - 1, on its device.
        With nb = num_buckets // 2 if bidirectional else num_buckets, max_exact = nb // 2 and
        m = |n| (bidirectional) or max(-n, 0) (not):
        bucket = (nb if bidirectional and n > 0 else 0)
                 + (m if m < max_exact else
                    min(max_exact + int(log(m / max_exact) / log(max_distance / max_exact)
                                        * (nb - max_exact)), nb - 1)),
        with the log term computed in float32, in that order, as Hugging Face T5 does.

    Raises:
        ValueError: if relative_position is not an integer tensor, num_buckets is too small,
            or max_distance <= max_exact.
    """
    if relative_position.dtype not in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise ValueError(f"relative_position must be an integer tensor, got {relative_position.dtype}")
    min_buckets = 4 if bidirectional else 2
    if num_buckets < min_buckets:
        raise ValueError(
            f"num_buckets must be >= {min_buckets} when bidirectional={bidirectional}, got {num_buckets}"
        )
    max_exact = (num_buckets // 2 if bidirectional else num_buckets) // 2
    if max_distance <= max_exact:
        raise ValueError(
            f"max_distance must be > {max_exact} (the exact buckets of num_buckets={num_buckets}, "
            f"bidirectional={bidirectional}), got {max_distance}"
        )

    n = relative_position.long()
    if bidirectional:
        num_buckets //= 2  # each direction gets half of the buckets
        bucket = (n > 0).long() * num_buckets  # keys after the query use the upper half
        n = n.abs()
    else:
        bucket = torch.zeros_like(n)
        n = -torch.min(n, torch.zeros_like(n))  # future keys collapse to distance 0
    # n is now in [0, inf)

    # half of the buckets hold exact distances, the other half logarithmically wider bins
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # clamp: where n < max_exact the log branch is thrown away anyway; this avoids log(0)
    n_large = n.clamp(min=max_exact).float()
    # float32, and this order of operations, as Hugging Face: bucket edges then agree exactly
    n_if_large = max_exact + (
        torch.log(n_large / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).long()
    n_if_large = torch.min(n_if_large, torch.full_like(n_if_large, num_buckets - 1))
    return bucket + torch.where(is_small, n, n_if_large)
