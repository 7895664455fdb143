"""The exercise catalog: the one table that the CLI, runner and reporters read.

Each row names an exercise (its stub is exercises/<name>.py, its reference
solutions/<name>.py, its hidden cases grading/cases/test_<name>.py), its place in the learner's
order, what it is worth in a run's total, and its hints, shown one at a time by
`posgrade hint NAME`. Its known mistakes (name, explanation, hint, how to detect it) are
too long for this table and import torch, so they live a layer up, in
posgrade/diagnosis/mistakes/<name>.py, reached as posgrade.diagnosis.mistakes.of(name).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    points: int  # the exercise's weight in a run's total; its cases share it by their own points
    hints: tuple
    bonus: bool = False

    @property
    def file(self):
        return f"{self.name}.py"

    @property
    def cases(self):
        return f"test_{self.name}.py"


EXERCISES = (
    Exercise(
        "batches",
        "Next-token batches from a token stream",
        5,
        (
            "The valid starts are 0 .. N - L - 1: the window needs L tokens and its target one more.",
            "torch.randint(low, high, ...) never returns high; pass generator=generator to it.",
            "Build an index matrix starts[:, None] + arange(L)[None, :] and index data with it; "
            "y uses the same indices plus one.",
        ),
    ),
    Exercise(
        "sinusoidal",
        "Sinusoidal absolute position encoding",
        10,
        (
            "Columns 2i and 2i+1 share one frequency, base^(-2i/d_model): use the even index 2i, not i.",
            "Even columns hold sin, odd columns cos, so row 0 is [0, 1, 0, 1, ...], not zeros.",
            "With an odd d_model there is one more sine column than cosine columns: "
            "table[:, 1::2] takes angle[:, : d_model // 2].",
            "Register the table with self.register_buffer(name, table, persistent=False), and in "
            "forward cast it to x.dtype and x.device; never add into x in place.",
        ),
    ),
    Exercise(
        "learned",
        "Learned absolute position embedding (GPT-2 wpe)",
        10,
        (
            "With a KV cache the new tokens sit at past_length, past_length + 1, ...: add past_length.",
            "Create the table once in __init__ as nn.Parameter(torch.empty(max_len, d_model)) and "
            "fill it with nn.init.normal_(..., std=init_std).",
            "No padding_idx: position 0 is a real position and needs gradients.",
        ),
    ),
    Exercise(
        "relative",
        "Relative positions: Shaw et al. and T5 buckets",
        15,
        (
            "The distance is key minus query, j - q_pos(i): positive when the key is to the right.",
            "With Lq < Lk the queries are the last Lq positions: q_pos(i) = len_k - len_q + i.",
            "Clip to [-max_distance, max_distance], then add max_distance: the table has 2K+1 rows.",
            "Scale the whole logit, (q.k + q.rel_k) / sqrt(d), and add the value term weights @ rel_v.",
            "T5 halves num_buckets when bidirectional, and keys after the query use the upper half.",
        ),
    ),
    Exercise(
        "xl",
        "Transformer-XL / XLNet relative attention",
        15,
        (
            "xl_positional_embedding is cat(sin(angle), cos(angle), dim=-1) with angle = "
            "pos_seq[:, None] * inv_freq[None, :]: all sines first, not interleaved.",
            "rel_shift: out[..., i, j] = x[..., i, j + qlen - i]. Without an index: reshape x to "
            "[..., klen + qlen, qlen], drop the first row, reshape to [..., qlen, klen + qlen - 1], "
            "keep the first klen columns.",
            "Check rel_shift on x[..., i, c] = 1000 * i + (klen - c): row i must read "
            "1000 * i + (klen - qlen + i - j), the distance from query i to key j.",
            "u (r_w_bias) goes with the content term (q + u)·kᵀ, v (r_r_bias) with the position "
            "term (q + v)·rᵀ; both are [H, d], so add them as bias[:, None, :].",
            "Divide the sum of both terms by sqrt(d), then mask, softmax over the keys, and zero "
            "the rows that had no allowed key.",
        ),
    ),
    Exercise(
        "rope",
        "Rotary position embedding (RoPE)",
        15,
        (
            "theta_i = base^(-2i/d) for the pair index i = 0 .. d/2 - 1; the angle is position * theta_i.",
            "interleaved=True pairs (x[2i], x[2i+1]); interleaved=False pairs (x[i], x[i + d/2]).",
            "Rotate a pair (a, b) to (a cos - b sin, a sin + b cos); the other sign rotates backwards.",
            "Use the positions you are given (a KV cache starts at past_length), compute the angles in "
            "float32, and cast the result back to x's dtype.",
        ),
    ),
    Exercise(
        "rope_scaling",
        "RoPE past its training length: linear, NTK, YaRN, Llama 3.1",
        10,
        (
            "Start from the default inv_freq = 1.0 / base ** (arange(0, d, 2).float() / d); every type "
            "changes these frequencies, and only yarn has an attention factor other than 1.0.",
            "linear divides every frequency by factor (once: not the positions as well). dynamic keeps the "
            "default up to original_max_position_embeddings, and beyond it uses base * (factor * seq_len / "
            "L_orig - (factor - 1)) ** (d / (d - 2)) as the base.",
            "yarn: pair indices below low keep theta_i, above high take theta_i / factor, and the ramp "
            "clamp((i - low) / (high - low), 0, 1) blends them; low and high come from beta_fast and "
            "beta_slow, floored and ceiled unless truncate is False.",
            "llama3 compares the wavelength 2 * pi / theta_i with L_orig / high_freq_factor (shorter: keep) "
            "and L_orig / low_freq_factor (longer: divide by factor); in between blend with "
            "s = (L_orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor).",
            "scaled_rope_angles multiplies both cos and sin by the attention factor, once, and passes "
            "seq_len = max(positions) + 1 to rope_inv_freq for dynamic.",
        ),
    ),
    Exercise(
        "attention",
        "Attention with pluggable positions",
        20,
        (
            "Scale the logits by 1/sqrt(d) with d the head width (q.shape[-1]), not d_model.",
            "Mask before the softmax (masked_fill with -inf), softmax over the keys (dim=-1), then "
            "zero the rows that had no allowed key so they give zeros, not NaN.",
            "The causal mask is bottom-right aligned: query i sits at len_k - len_q + i.",
            "Split heads with view(B, L, H, d).transpose(1, 2) and merge with the exact inverse.",
            "Dropout only in training: pass dropout_p = self.dropout if self.training else 0.0.",
        ),
    ),
    Exercise(
        "decoding",
        "Decoding with a KV cache and grouped-query attention",
        15,
        (
            "repeat_kv: query head h uses kv head h // n_rep, so each kv head repeats n_rep times in a "
            "row: x[:, :, None].expand(B, Hkv, n_rep, L, d).reshape(B, Hkv * n_rep, L, d) "
            "(repeat_interleave), not x.repeat(1, n_rep, 1, 1).",
            "The new tokens are the last ones: their RoPE positions are cache.length + arange(L), and "
            "the causal mask is bottom-right aligned (query i sees keys j <= Lk - Lq + i).",
            "KVCache.update concatenates along the length dim (-2 of [B, Hkv, L, d]) and returns "
            "everything cached, not only the new tokens.",
            "Llama's RoPE is half-split: rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]) and "
            "cos = cos(cat(angles, angles)); rotate q and k after the head split, never v.",
            "Check the key property yourself: decoding token by token with one KVCache must give the "
            "rows of forward(x) over the whole sequence.",
        ),
    ),
    Exercise(
        "flash",
        "FlashAttention: tiled attention with an online softmax",
        10,
        (
            "Write online_softmax_update first and check it on one row by hand: with blocks [0] and "
            "[ln 3] and v = [10, 20], it must end at m = ln 3, l = 4/3, acc = 70/3, and acc / l = 17.5.",
            "When the max grows from m to m_new, everything summed so far is relative to the old max: "
            "multiply both l and acc by exp(m - m_new) before adding the new block's terms.",
            "A row whose keys so far are all masked has m_new = -inf and exp(-inf - (-inf)) = NaN: use "
            "0 instead of m_new in the exponents for those rows (torch.where(isneginf(m_new), 0, m_new)).",
            "Keep acc unnormalised and divide by l once, after the last key block; lse = m + log(l) in "
            "the natural log, and rows with l = 0 give out 0 and lse -inf.",
            "Causal is bottom-right: query i sits at Lk - Lq + i. Build each tile's mask from its own "
            "positions (arange of the tile's queries and keys), never one [Lq, Lk] mask.",
        ),
    ),
    Exercise(
        "alibi",
        "ALiBi: attention with linear biases",
        5,
        (
            "For a power of two n, the slopes are 2^(-8h/n) for h = 1 .. n.",
            "Otherwise take the slopes of the nearest lower power of two c, then every other slope "
            "of the 2c sequence ([0::2]) for the n - c heads left.",
            "The bias is -slope * |q_pos(i) - j| with q_pos(i) = len_k - len_q + i: distant keys cost more.",
        ),
        bonus=True,
    ),
)

_BY_NAME = {e.name: e for e in EXERCISES}


def names():
    return [e.name for e in EXERCISES]


def get(name):
    """The exercise called name; KeyError with the closest names when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; the exercises are {', '.join(names())}"
        raise KeyError(f"no exercise called {name!r}{hint}") from None
