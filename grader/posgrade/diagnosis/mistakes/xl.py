"""Known mistakes of the xl exercise (see posgrade.diagnosis.mistakes for how each is detected).

Every one is an edit of the reference: the failed case's calls (xl_positional_embedding,
rel_shift, xl_relative_attention) are replayed on the edited module. A mistake inside rel_shift
also reaches xl_relative_attention, which shifts with it. With one query (qlen = 1) a shift by
qlen - 1 - i, a shift by i and no shift at all read the same columns; the first of them listed
here is named, and each explanation holds for that case too.
"""

from posgrade.diagnosis.mistakes import Mistake

_SINCOS = "return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)"
_SHIFT = "x = x.reshape(*lead, width, qlen)[..., 1:, :]  # [..., klen + qlen - 1, qlen]"
_AC = "ac = (q + u) @ k.transpose(-2, -1)"
_BD = "bd = (q + v_r) @ r.transpose(-2, -1)"
_SCALE = "logits = logits / math.sqrt(d)"


def _gather_shift(cols):
    """An edit that makes rel_shift read column `cols` (in i, j, qlen, klen) of row i."""
    return (_SHIFT, "i = torch.arange(qlen, device=x.device)[:, None]; "
                    "j = torch.arange(klen, device=x.device)[None, :]; "
                    f"return x[..., i, {cols}]")


MISTAKES = [
    # -- xl_positional_embedding --------------------------------------------------------------
    Mistake(
        "interleaved_sin_cos", "sin and cos interleaved",
        "Transformer-XL's embedding puts all sines first, cat(sin(angle), cos(angle)); yours alternates "
        "sin and cos column by column, as Vaswani et al.'s absolute table does",
        "torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1) with angle = pos_seq[:, None] * inv_freq[None, :].",
        edits=((_SINCOS, "return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(-2)"),),
    ),
    Mistake(
        "cos_sin_swapped", "cosines before sines",
        "the first d/2 columns should be sin(pos * inv_freq) and the last d/2 cos(pos * inv_freq); yours "
        "puts the cosines first",
        "cat(sin, cos), in that order: the row of distance 0 is d/2 zeros, then d/2 ones.",
        edits=((_SINCOS, "return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)"),),
    ),
    # -- rel_shift ----------------------------------------------------------------------------
    Mistake(
        "shift_off_by_one", "shift off by one",
        "row i should read column j + qlen - i of x (distance q_pos(i) - j); yours reads column "
        "j + qlen - 1 - i, one distance too far, as if the columns held distances klen - 1 .. -qlen "
        "(Transformer-XL's pos_seq starts at klen - 1, XLNet's at klen)",
        "out[..., i, j] = x[..., i, j + qlen - i]: reshape to [..., klen + qlen, qlen], drop the first "
        "row, reshape to [..., qlen, klen + qlen - 1], keep the first klen columns.",
        edits=(_gather_shift("j + qlen - 1 - i"),),
    ),
    Mistake(
        "shift_wrong_direction", "rows shifted the wrong way",
        "row i should read column j + qlen - i of x, so later queries (larger i) start further left; "
        "yours reads column j + i, shifting the rows the other way",
        "Query i sits at position klen - qlen + i and key j is at distance klen - qlen + i - j, which is "
        "column j + qlen - i of x.",
        edits=(_gather_shift("j + i"),),
    ),
    Mistake(
        "distances_ascending", "columns read as ascending distances",
        "the columns of x hold distances klen, klen - 1, ..., -qlen + 1 (descending, XLNet's "
        "arange(klen, -qlen, -1)); yours reads them as ascending, so every query sees its keys mirrored",
        "Column c is distance klen - c; key j of query i is at distance klen - qlen + i - j, column "
        "j + qlen - i.",
        edits=(_gather_shift("klen - 1 + i - j"),),
    ),
    Mistake(
        "shift_not_sliced", "shift not sliced to klen columns",
        "after the reshape trick each row has klen + qlen - 1 columns and only the first klen are keys; "
        "yours returns all of them",
        "Finish with x[..., :klen]: the result is [..., qlen, klen].",
        edits=(("return x[..., :klen]  # [..., qlen, klen]", "return x  # [..., qlen, klen]"),),
    ),
    # -- xl_relative_attention ----------------------------------------------------------------
    Mistake(
        "position_term_unshifted", "position term not shifted",
        "(q + v)·rᵀ has a column per distance, and rel_shift must line column j up with distance "
        "q_pos(i) - j; yours takes its first Lk columns unshifted, so every query reads the same distances",
        "bd = rel_shift((q + r_r_bias[:, None]) @ r.transpose(-2, -1), Lk).",
        edits=(("bd = rel_shift(bd, len_k)", "bd = bd[..., :len_k]"),),
    ),
    Mistake(
        "no_content_bias", "u (r_w_bias) left out",
        "the content term should be (q + u)·kᵀ with u = r_w_bias; yours is q·kᵀ",
        "Add r_w_bias[:, None, :] ([H, 1, d]) to q before multiplying by kᵀ.",
        edits=((_AC, "ac = q @ k.transpose(-2, -1)"),),
    ),
    Mistake(
        "no_position_bias", "v (r_r_bias) left out",
        "the position term should be (q + v)·rᵀ with v = r_r_bias, shifted; yours shifts q·rᵀ",
        "Add r_r_bias[:, None, :] ([H, 1, d]) to q before multiplying by rᵀ.",
        edits=((_BD, "bd = q @ r.transpose(-2, -1)"),),
    ),
    Mistake(
        "biases_swapped", "u and v swapped",
        "u (r_w_bias) belongs to the content term (q + u)·kᵀ and v (r_r_bias) to the position term "
        "(q + v)·rᵀ; yours adds them the other way round",
        "r_w_bias goes with k (w for 'word', content), r_r_bias with r (position).",
        edits=((_AC, "ac = (q + v_r) @ k.transpose(-2, -1)"), (_BD, "bd = (q + u) @ r.transpose(-2, -1)")),
    ),
    Mistake(
        "biases_on_content", "both biases on the content term",
        "the content term should be (q + u)·kᵀ and the position term (q + v)·rᵀ; yours adds u and v both "
        "to q for the content term and multiplies r by q alone",
        "Two different queries: q + r_w_bias against k, q + r_r_bias against r.",
        edits=((_AC, "ac = (q + u + v_r) @ k.transpose(-2, -1)"), (_BD, "bd = q @ r.transpose(-2, -1)")),
    ),
    Mistake(
        "no_scale", "logits not scaled",
        "the logits should be (AC + BD) / sqrt(d) with d = q.shape[-1]; yours are not divided at all",
        "Divide the summed logits by math.sqrt(q.shape[-1]) before the softmax.",
        edits=((_SCALE, "logits = logits"),),
    ),
    Mistake(
        "position_term_unscaled", "position term not scaled",
        "the whole logit (AC + BD) should be divided by sqrt(d); yours divides only the content term AC",
        "Add the two terms first, then divide by math.sqrt(d), as XLNet's (ac + bd + ef) * scale.",
        edits=((_AC, "ac = (q + u) @ k.transpose(-2, -1) / math.sqrt(d)"), (_SCALE, "logits = logits")),
    ),
    Mistake(
        "mask_inverted", "mask read the wrong way",
        "mask is True where a query may attend; yours keeps the keys marked False and drops those marked "
        "True (nn.MultiheadAttention's convention, or XLNet's float mask of 1 = masked)",
        "logits.masked_fill(~mask, torch.finfo(logits.dtype).min): fill where mask is False.",
        edits=(("logits.masked_fill(~mask, torch.finfo(logits.dtype).min)",
                "logits.masked_fill(mask, torch.finfo(logits.dtype).min)"),
               ("weights.masked_fill(~mask, 0.0)", "weights.masked_fill(mask, 0.0)")),
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
]
