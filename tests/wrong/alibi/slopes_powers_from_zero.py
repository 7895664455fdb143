"""Mistake: the head powers start at 0, so the first head gets slope 1 and the smallest slope 2^-8 is lost
Caught by: test_slopes_power_of_two

alibi — attention with linear biases (Press, Smith and Lewis 2022), bonus.

ALiBi adds no position vectors at all. Each head h gets a fixed slope m_h and adds
-m_h * distance to its attention logits, so far-away keys are penalised linearly; the
bias is added after the 1/sqrt(d) scaling and is not scaled itself. Heads with a large
slope look locally, heads with a small slope look far.

Slopes, n_heads a power of two: a geometric sequence that starts at 2^(-8/n) with that
same ratio, m_h = 2^(-8h/n) for h = 1..n. For 8 heads:
    1/2, 1/4, 1/8, 1/16, 1/32, 1/64, 1/128, 1/256
Otherwise (the paper's code, BLOOM and MPT agree): with c = 2^floor(log2 n), take the c
slopes of the power of two c, then every other slope of the 2c sequence (its odd powers)
for the n - c heads left. For 12 heads: 2^-1, ..., 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5
(not sorted; 2^(-8h/12) would be wrong).

Bias: query i sits at position q_pos(i) = len_k - len_q + i (the last len_q positions, as
with a KV cache; the same alignment as causal_mask), and bias[h, i, j] = -m_h * |q_pos(i) - j|.
Worked example, alibi_bias(8, 2, 4)[0] (head 0 of 8, m = 1/2), so q_pos = 2, 3:
    bias[0] = [[-1.0, -0.5,  0.0, -0.5],
               [-1.5, -1.0, -0.5,  0.0]]
Under a causal mask only j <= q_pos(i) survives, where this equals -m * (q_pos(i) - j). The
paper's fairseq code and BLOOM add +m * j instead (a ramp over keys, the same for every
row): softmax ignores a per-row constant, so the probabilities are the same.
"""

import torch


def alibi_slopes(n_heads, device=None):
    """The ALiBi slope of each head.

    Args:
        n_heads: int >= 1, the number of heads H.
        device: where to create the result (None = the CPU).

    Returns:
        float32 Tensor [n_heads]: m_h = 2^(-8h/n_heads) for h = 1..n_heads when n_heads is a
        power of two; otherwise, with c = 2^floor(log2 n_heads), the c slopes of c followed by
        the slopes of 2c at odd h = 1, 3, 5, ... (the first n_heads - c of them).

    Raises:
        ValueError: if n_heads < 1.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")

    def power_of_2_slopes(n):
        # the paper's start 2^(-2^-(log2(n) - 3)) is 2^(-8/n), and the ratio equals the start
        start = 2.0 ** (-8.0 / n)
        return [start**h for h in range(n)]

    c = 2 ** (int(n_heads).bit_length() - 1)  # the largest power of two <= n_heads (exact)
    slopes = power_of_2_slopes(c)
    # the extra heads fall between the existing slopes: the odd powers of 2^(-8/(2c))
    slopes += power_of_2_slopes(2 * c)[0::2][: n_heads - c]
    return torch.tensor(slopes, dtype=torch.float32, device=device)


def alibi_bias(n_heads, len_q, len_k, device=None):
    """The ALiBi bias to add to the (already scaled) attention logits.

    Args:
        n_heads: int >= 1, the number of heads H.
        len_q: int >= 0, the number of queries Lq; they are the last Lq of the Lk positions.
        len_k: int >= len_q, the number of keys Lk (positions 0 .. Lk - 1).
        device: where to create the result (None = the CPU).

    Returns:
        float32 Tensor [n_heads, Lq, Lk] with bias[h, i, j] = -m_h * |q_pos(i) - j|,
        where m = alibi_slopes(n_heads) and q_pos(i) = len_k - len_q + i. It is symmetric
        in distance; apply a causal mask separately for a decoder.

    Raises:
        ValueError: if n_heads < 1, len_q < 0, len_k < 0 or len_q > len_k.
    """
    if len_q < 0 or len_k < 0:
        raise ValueError(f"len_q and len_k must be >= 0, got {len_q}, {len_k}")
    if len_q > len_k:
        raise ValueError(f"len_q must be <= len_k (queries are the last keys), got {len_q} > {len_k}")
    slopes = alibi_slopes(n_heads, device=device)  # [H]
    q_pos = torch.arange(len_k - len_q, len_k, device=device)  # [Lq], offset as with a KV cache
    k_pos = torch.arange(len_k, device=device)  # [Lk]
    distance = (q_pos[:, None] - k_pos[None, :]).abs().to(torch.float32)  # [Lq, Lk]
    return -slopes[:, None, None] * distance  # [H, Lq, Lk]
