"""Known mistakes of the relative exercise (see posgrade.diagnosis.mistakes for how each is detected).

Most are edits of the reference: the failed case's calls (relative_position_index, the module
probe, relative_attention, t5_relative_position_bucket) are replayed on the edited module. The
table's initialisation is random, so it is judged by its statistics (matches), never by values.
"""

import math

from posgrade.diagnosis.mistakes import Mistake


def _normal_init(calls):
    """The initial table (the module probe with return_state) looks like N(0, 1) draws: mean 0,
    standard deviation 1 and a normal's kurtosis of 3 (a uniform's is 1.8), over many values."""
    for call in calls:
        if call.op != "probe" or call.name != "module" or call.error or not call.kwargs.get("return_state"):
            continue
        state = call.value.get("state_dict") if isinstance(call.value, dict) else None
        w = state.get("weight") if isinstance(state, dict) else None
        if w is None or not w.is_floating_point() or w.numel() < 1000:
            continue
        w = w.detach().double().cpu().flatten()
        mean, std = float(w.mean()), float(w.std())
        if not (math.isfinite(std) and abs(std - 1) < 0.05 and abs(mean) < 0.05):
            continue
        kurtosis = float(((w - mean) ** 4).mean()) / std**4
        if abs(kurtosis - 3) < 0.3 and float(w.abs().max()) > 3:
            return True
    return False


MISTAKES = [
    # -- relative_position_index --------------------------------------------------------------
    Mistake(
        "sign_flipped", "distance is query minus key",
        "the distance should be key minus query, j - q_pos(i), so a key to the right of its query gets "
        "an index above K; yours is i - j and every query reads the table mirrored",
        "distance = k_pos[None, :] - q_pos[:, None] (keys along the columns minus queries along the rows).",
        edits=(("distance = k_pos[None, :] - q_pos[:, None]", "distance = q_pos[:, None] - k_pos[None, :]"),),
    ),
    Mistake(
        "index_not_shifted", "index not shifted by K",
        "the index should be clamp(j - q_pos(i), -K, K) + K, in 0..2K with distance 0 at row K; yours "
        "leaves out the + K, so keys before the query get negative indices that wrap to the table's end",
        "Add max_distance after clipping: indices then run 0..2K and index K is distance 0.",
        edits=(("return distance.clamp(-max_distance, max_distance) + max_distance",
                "return distance.clamp(-max_distance, max_distance)"),),
    ),
    Mistake(
        "no_clip", "distances not clipped",
        "distances beyond ±K should share the end rows: clamp(j - q_pos(i), -K, K) + K stays in 0..2K; "
        "yours is not clipped, so far pairs get indices outside the table",
        "Clip before shifting: distance.clamp(-max_distance, max_distance) + max_distance.",
        edits=(("return distance.clamp(-max_distance, max_distance) + max_distance",
                "return distance + max_distance"),),
    ),
    Mistake(
        "clip_off_by_one", "distances clipped to ±(K - 1)",
        "distances should be clipped to [-K, K], so indices run over every row 0..2K; yours clip to "
        "±(K - 1) and the two end rows (distances -K and +K) are never used",
        "clamp(-max_distance, max_distance): K itself is still a distance the table tells apart.",
        edits=(("return distance.clamp(-max_distance, max_distance) + max_distance",
                "return distance.clamp(-(max_distance - 1), max_distance - 1) + max_distance"),),
    ),
    Mistake(
        "table_2k_rows", "table of 2K rows",
        "distances -K..K are 2K + 1 values, so weight should be [2K + 1, num_units] with distance 0 at row "
        "K; yours has 2K rows, so distance -K has no row of its own and distance 0 sits at row K - 1",
        "self.weight = nn.Parameter(torch.empty(2 * max_distance + 1, num_units)), and index = "
        "clamp(j - q_pos(i), -K, K) + K.",
        edits=(("torch.empty(2 * max_distance + 1, num_units)", "torch.empty(2 * max_distance, num_units)"),
               ("return distance.clamp(-max_distance, max_distance) + max_distance",
                "return distance.clamp(-max_distance + 1, max_distance) + max_distance - 1")),
    ),
    Mistake(
        "queries_first_positions", "queries placed at the first positions",
        "with len_q < len_k the queries are the last len_q positions, q_pos(i) = len_k - len_q + i (a KV "
        "cache appends new queries at the end); yours places them at 0..len_q - 1",
        "q_pos = torch.arange(len_k - len_q, len_k): the same alignment as causal_mask and alibi_bias.",
        edits=(("q_pos = torch.arange(len_k - len_q, len_k, dtype=torch.long, device=device)",
                "q_pos = torch.arange(len_q, dtype=torch.long, device=device)"),),
    ),
    # -- RelativePositionEmbedding ------------------------------------------------------------
    Mistake(
        "normal_init", "table initialised N(0, 1)",
        "weight should start xavier-uniform, U(-a, a) with a = sqrt(6 / (num_units + 2K + 1)); yours "
        "starts N(0, 1) (nn.Embedding's default), far too large a scale",
        "Call nn.init.xavier_uniform_(self.weight) in __init__ (tensor2tensor's glorot_uniform default).",
        matches=_normal_init,
    ),
    # -- relative_attention -------------------------------------------------------------------
    Mistake(
        "rel_k_unscaled", "relative term not scaled",
        "the whole logit (q·kᵀ + q·rel_kᵀ) should be divided by sqrt(d); yours divides only q·kᵀ and adds "
        "q·rel_kᵀ unscaled",
        "Add the two terms first, then divide by math.sqrt(d) (tensor2tensor scales q, so both terms are "
        "scaled).",
        edits=(("logits = q @ k.transpose(-2, -1)  # [B, H, Lq, Lk]",
                "logits = q @ k.transpose(-2, -1) / math.sqrt(d)  # [B, H, Lq, Lk]"),
               ("logits = logits / math.sqrt(d)", "logits = logits")),
    ),
    Mistake(
        "no_scale", "logits not scaled",
        "the logits should be (q·kᵀ + q·rel_kᵀ) / sqrt(d) with d = q.shape[-1]; yours are not divided at "
        "all (T5's convention, not Shaw et al.'s)",
        "Divide the summed logits by math.sqrt(q.shape[-1]) before the softmax.",
        edits=(("logits = logits / math.sqrt(d)", "logits = logits"),),
    ),
    Mistake(
        "missing_value_term", "value term left out",
        "the output should be weights·v + weights·rel_v (o_i = sum_j w_ij (v_j + aV_ij)); yours leaves out "
        "the rel_v term",
        "When rel_v is given, add torch.einsum('...qk,qkd->...qd', weights, rel_v) to weights @ v.",
        edits=(("out = out + torch.einsum(\"...qk,qkd->...qd\", weights, rel_v)", "pass"),),
    ),
    Mistake(
        "masked_row_nan", "NaN for a query with no allowed key",
        "a query whose keys are all masked should get zero weights and a zero output; yours gets NaN "
        "(a softmax over a row of -inf is 0/0)",
        "Fill masked logits with torch.finfo(dtype).min instead of -inf, then zero the masked weights after "
        "the softmax (masked_fill(~mask, 0.0)).",
        edits=(("torch.finfo(logits.dtype).min)", "float(\"-inf\"))"),
               ("weights = weights.masked_fill(~mask, 0.0)", "pass")),
    ),
    Mistake(
        "masked_row_uniform", "fully masked row averages every key",
        "a query whose keys are all masked should get zero weights and a zero output; yours spreads its "
        "weight uniformly over the masked keys",
        "After the softmax, zero the masked weights: weights.masked_fill(~mask, 0.0).",
        edits=(("weights = weights.masked_fill(~mask, 0.0)", "pass"),),
    ),
    # -- T5 buckets ---------------------------------------------------------------------------
    Mistake(
        "t5_query_minus_key", "T5 buckets of query minus key",
        "relative_position is key minus query, so keys after the query (n > 0) take the upper half of the "
        "buckets; yours negate it and keys before the query land there instead",
        "Use relative_position as given (memory_position - query_position); do not negate it.",
        edits=(("n = relative_position.long()", "n = -relative_position.long()"),),
    ),
    Mistake(
        "t5_buckets_not_halved", "bidirectional buckets not halved",
        "in bidirectional mode each direction gets num_buckets // 2 buckets, keys after the query starting "
        "at num_buckets // 2; yours keeps all num_buckets per side, so buckets run past num_buckets - 1",
        "When bidirectional, do num_buckets //= 2 first, then offset n > 0 by that half.",
        edits=(("        num_buckets //= 2  # each direction gets half of the buckets\n", ""),),
    ),
    Mistake(
        "t5_decoder_keeps_future", "decoder buckets keep future keys",
        "with bidirectional=False a key after the query (n > 0) counts as distance 0 (bucket 0); yours "
        "takes |n|, so future keys get the buckets of past ones",
        "n = -torch.min(n, torch.zeros_like(n)): negative distances become positive, positive ones 0.",
        edits=(("n = -torch.min(n, torch.zeros_like(n))", "n = n.abs()"),),
    ),
    Mistake(
        "t5_no_upper_cap", "log buckets not capped",
        "distances at or beyond max_distance should share the last bucket of their half; yours are not "
        "capped, so far distances spill into the other half or past num_buckets - 1",
        "Cap the log buckets: torch.min(n_if_large, torch.full_like(n_if_large, num_buckets - 1)), with "
        "num_buckets already halved when bidirectional.",
        edits=(("n_if_large = torch.min(n_if_large, torch.full_like(n_if_large, num_buckets - 1))", "pass"),),
    ),
    Mistake(
        "max_distance_hardcoded", "max_distance hard-coded in forward",
        "forward should clip distances with the module's own max_distance K; yours uses a fixed number, "
        "so any other K indexes the wrong rows (or past the table)",
        "Pass self.max_distance (stored in __init__) to relative_position_index in forward.",
        edits=(("idx = relative_position_index(len_q, len_k, self.max_distance, device=self.weight.device)",
                "idx = relative_position_index(len_q, len_k, 2, device=self.weight.device)"),),
    ),
]
