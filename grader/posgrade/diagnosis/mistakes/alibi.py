"""Known mistakes of the alibi exercise (see posgrade.diagnosis.mistakes for how each is detected).

The bias cases compare attention probabilities, but the calls replayed here are the learner's
own alibi_bias and alibi_slopes calls, so a mutant must reproduce the bias itself (a ramp that
differs by a constant per row, as fairseq's or BLOOM's, is no mistake and is not graded as one).
"""

from posgrade.diagnosis.mistakes import Mistake

MISTAKES = [
    Mistake(
        "slopes_powers_from_zero", "slope powers start at h = 0",
        "the slopes are 2^(-8h/n) for h = 1..n, so the first is 2^(-8/n) and the last 2^-8; yours start "
        "at h = 0, so head 0 gets slope 1 and 2^-8 is lost",
        "Take the powers over range(1, n + 1): start = 2^(-8/n), and the ratio equals the start.",
        edits=(("return [start**h for h in range(1, n + 1)]", "return [start**h for h in range(n)]"),),
    ),
    Mistake(
        "slopes_reversed", "slopes in reversed order",
        "head 0 should get the steepest slope 2^(-8/n) and the last head the flattest; yours run the other "
        "way round",
        "Keep the paper's order, m_h = 2^(-8h/n) for h = 1..n (descending); do not flip or reverse it.",
        edits=(("return torch.tensor(slopes, dtype=torch.float32, device=device)",
                "return torch.tensor(slopes[::-1], dtype=torch.float32, device=device)"),),
    ),
    Mistake(
        "slopes_geometric_for_all_n", "2^(-8h/n) used for every n",
        "2^(-8h/n) holds only when n is a power of two; for other n the slopes are those of c = "
        "2^floor(log2 n), then every other slope of 2c for the n - c heads left",
        "With c the largest power of two <= n: slopes(c) + slopes(2c)[0::2][: n - c].",
        edits=(("slopes = power_of_2_slopes(c)\n", "slopes = power_of_2_slopes(n_heads)\n"),
               ("slopes += power_of_2_slopes(2 * c)[0::2][: n_heads - c]", "pass")),
    ),
    Mistake(
        "slopes_extra_even_powers", "extra heads take the even powers ([1::2])",
        "the extra heads of a non-power-of-two n should take the odd powers of the 2c sequence ([0::2]), "
        "which fall between the existing slopes; yours take [1::2], which repeat slopes heads 0..c-1 have",
        "slopes(2c)[0::2] starts at 2^(-8/(2c)), the first odd power; [1::2] gives the even powers again.",
        edits=(("slopes += power_of_2_slopes(2 * c)[0::2][: n_heads - c]",
                "slopes += power_of_2_slopes(2 * c)[1::2][: n_heads - c]"),),
    ),
    Mistake(
        "slopes_sorted", "slopes sorted for a non-power-of-two n",
        "for a non-power-of-two n the slopes are the c slopes of the power of two, then the extra heads' "
        "slopes, unsorted; yours are sorted from steep to flat, so most heads get another head's slope",
        "Do not sort: append slopes(2c)[0::2][: n - c] after slopes(c), as the paper's code, BLOOM and MPT do.",
        edits=(("return torch.tensor(slopes, dtype=torch.float32, device=device)",
                "return torch.tensor(sorted(slopes, reverse=True), dtype=torch.float32, device=device)"),),
    ),
    Mistake(
        "bias_sign_flipped", "bias rewards distance",
        "the bias should be -m·|q_pos(i) - j|, a penalty growing with distance; yours is +m·|q_pos(i) - j|, "
        "so far keys are preferred",
        "Negate: bias = -slope[:, None, None] * distance, 0 at the query's own position.",
        edits=(("return -slopes[:, None, None] * distance", "return slopes[:, None, None] * distance"),),
    ),
    Mistake(
        "bias_without_slope", "distance not multiplied by the slope",
        "bias[h] should be -m_h·|q_pos(i) - j|, each head with its own slope; yours is -|q_pos(i) - j| for "
        "every head, so all heads see the same, far too steep penalty",
        "Multiply by the slopes broadcast over the head axis: -alibi_slopes(H)[:, None, None] * distance.",
        edits=(("return -slopes[:, None, None] * distance", "return -torch.ones_like(slopes)[:, None, None] * distance"),),
    ),
    Mistake(
        "no_query_offset", "queries placed at 0..Lq-1",
        "with Lq < Lk query i sits at q_pos(i) = len_k - len_q + i (the last Lq positions, as with a KV "
        "cache); yours places it at position i",
        "q_pos = arange(len_k - len_q, len_k): the same bottom-right alignment as causal_mask.",
        edits=(("q_pos = torch.arange(len_k - len_q, len_k, device=device)",
                "q_pos = torch.arange(len_q, device=device)"),),
    ),
    Mistake(
        "signed_distance", "distance not taken in absolute value",
        "the bias is -m·|q_pos(i) - j|, symmetric; yours drops the absolute value, so keys after the query "
        "get a positive bias once no causal mask hides them",
        "Use (q_pos[:, None] - k_pos[None, :]).abs(): without a mask (an encoder) both sides are penalised.",
        edits=(("distance = (q_pos[:, None] - k_pos[None, :]).abs().to(torch.float32)",
                "distance = (q_pos[:, None] - k_pos[None, :]).to(torch.float32)"),),
    ),
]
