"""Known mistakes of the exercise flash (see posgrade.diagnosis.mistakes for how each is detected).

Most are edits of the reference: the failed case's calls are replayed on the edited module.
Two are seen in what a probe reports rather than in values: the memory a call used at 4096
tokens (the peak_memory probe of test_memory: a naive attention that builds the [Lq, Lk]
logits gives right values, and only its memory shows it), and torch's own attention reached
(the torch_ops probe). The memory one comes first, so that a failed memory case is named
without replaying a 4096-token call on every mutant.
"""

from posgrade.diagnosis.mistakes import Mistake, torch_attention_found


def _full_logits_built(calls):
    """The peak_memory probe measured at least one float32 [B, H, Lq, Lk] tensor's worth of memory
    in flash_attention (what the full score matrix alone takes)."""
    for call in calls:
        if call.op != "probe" or call.name != "peak_memory" or call.error or not isinstance(call.value, dict):
            continue
        q, k = call.kwargs["args"][0], call.kwargs["args"][1]
        B, H, Lq, _ = q.shape
        full = B * H * Lq * k.shape[-2] * 4
        peak = call.value.get("peak_bytes")
        if isinstance(peak, int) and peak >= full:
            return True
    return False


MISTAKES = [
    Mistake(
        "full_logits", "the full [Lq, Lk] score matrix built",
        "flash_attention should hold one [block_size, block_size] tile of scores at a time; yours used at "
        "least the memory of the whole float32 [B, H, Lq, Lk] logits at 4096 tokens (plain attention)",
        "Loop over query blocks, and inside over key blocks: scores = q_blk @ k_blk.transpose(-2, -1) * scale, "
        "mask the tile by its own positions, fold it in with online_softmax_update, divide by l at the end.",
        matches=_full_logits_built,
    ),
    Mistake(
        "uses_torch_sdpa", "torch's own attention called",
        "flash_attention must compute the tiles itself; yours reaches torch's scaled_dot_product_attention "
        "(or its flash kernel)",
        "Per tile: scores = q_blk @ k_blk.transpose(-2, -1) / sqrt(d), then online_softmax_update; no torch "
        "attention call anywhere.",
        matches=torch_attention_found,
    ),
    Mistake(
        "acc_not_rescaled", "old accumulator not rescaled",
        "when the running max grows, acc (summed relative to the old max) must be multiplied by "
        "exp(m - m_new) before p @ v_block is added; yours adds to it as it is",
        "acc_new = exp(m - m_new)[..., None] * acc + p @ v_block, with the same factor that rescales l.",
        edits=(("acc_new = alpha[..., None] * acc + p @ v_block.to(acc.dtype)",
                "acc_new = acc + p @ v_block.to(acc.dtype)"),),
    ),
    Mistake(
        "l_not_rescaled", "running sum l not rescaled",
        "when the running max grows, l (a sum of exp(logit - m_old)) must be multiplied by exp(m - m_new); "
        "yours adds the new block's sum to the old l as it is",
        "l_new = exp(m - m_new) * l + p.sum(-1): every term summed so far shrinks with the new max.",
        edits=(("l_new = alpha * l + p.sum(dim=-1)", "l_new = l + p.sum(dim=-1)"),),
    ),
    Mistake(
        "max_of_block_only", "running max forgets the old max",
        "m_new should be max(m, rowmax(scores)); yours is the max of this block's scores alone, so the state "
        "no longer holds the largest logit seen (and exp(m - m_new) can overflow)",
        "m_new = torch.maximum(m, scores.amax(dim=-1)).",
        edits=(("m_new = torch.maximum(m, scores.amax(dim=-1))", "m_new = scores.amax(dim=-1)"),),
    ),
    Mistake(
        "divided_every_block", "output normalised at every block",
        "acc should stay the unnormalised Σ exp(logit - m) · v until the last block, then be divided by l "
        "once; yours divides acc by l at every block, and again at the end",
        "Return acc_new = exp(m - m_new) * acc + p @ v_block unnormalised; flash_attention computes "
        "out = acc / l once, after the last key block.",
        edits=(("acc_new = alpha[..., None] * acc + p @ v_block.to(acc.dtype)",
                "acc_new = (alpha[..., None] * acc + p @ v_block.to(acc.dtype)) / l_new[..., None]"),),
    ),
    Mistake(
        "nan_masked_first_block", "NaN for a fully masked block",
        "a row whose keys so far are all masked has m_new = -inf, and exp(-inf - (-inf)) is NaN; the row "
        "should stay at l = 0 and acc = 0 (out 0, lse -inf at the end)",
        "Use 0 in place of an m_new of -inf in both exponents: m_safe = torch.where(torch.isneginf(m_new), "
        "0.0, m_new).",
        edits=(("m_safe = torch.where(torch.isneginf(m_new), 0.0, m_new)", "m_safe = m_new"),),
    ),
    Mistake(
        "causal_top_left", "causal mask aligned top-left",
        "with causal=True, query i sits at position Lk - Lq + i and sees keys j <= Lk - Lq + i; yours lets "
        "query i see keys j <= i (SDPA's is_causal), wrong when Lq != Lk",
        "Offset the query positions by Lk - Lq when you build each tile's mask (and when you skip key blocks).",
        edits=(("shift = Lk - Lq  # query i sits", "shift = 0  # query i sits"),),
    ),
    Mistake(
        "no_scale", "logits not scaled",
        "the logits should be q·kᵀ / sqrt(d) with d = q.shape[-1]; yours are the raw dot products",
        "Multiply each tile's q_blk @ k_blk.transpose(-2, -1) by 1 / math.sqrt(q.shape[-1]).",
        edits=(("scale = 1.0 / math.sqrt(d)", "scale = 1.0"),),
    ),
    Mistake(
        "scale_by_d", "logits divided by d, not sqrt(d)",
        "the logits should be divided by sqrt(d); yours are divided by d, which flattens the attention",
        "scale = 1 / math.sqrt(q.shape[-1]).",
        edits=(("scale = 1.0 / math.sqrt(d)", "scale = 1.0 / d"),),
    ),
    Mistake(
        "lse_is_max", "lse without log(l)",
        "lse should be the logsumexp m + log(l); yours is the running max m alone",
        "lse = m + torch.log(l) (and -inf where l = 0).",
        edits=(("torch.where(seen, m + torch.log(torch.where(seen, l, 1.0)), float(\"-inf\"))",
                "torch.where(seen, m, float(\"-inf\"))"),),
    ),
    Mistake(
        "lse_log2", "lse in base 2",
        "lse should be the natural logsumexp, m + ln(l); yours is in base 2 (divided by ln 2), the form "
        "some kernels keep internally with exp2",
        "Use torch.exp and torch.log throughout; if you work with exp2, convert back: lse = lse2 * ln 2.",
        edits=(("torch.where(seen, m + torch.log(torch.where(seen, l, 1.0)), float(\"-inf\"))",
                "torch.where(seen, (m + torch.log(torch.where(seen, l, 1.0))) / math.log(2), float(\"-inf\"))"),),
    ),
    Mistake(
        "out_not_cast", "output not cast back to the input dtype",
        "out should be in q's dtype (float16 in, float16 out); yours stays in the float32 it was accumulated in",
        "Accumulate in float32, then return (acc / l).to(q.dtype).",
        edits=(("out = torch.empty(B, H, Lq, dv, dtype=q.dtype, device=q.device)",
                "out = torch.empty(B, H, Lq, dv, dtype=acc_dtype, device=q.device)"),
               ("acc / torch.where(seen, l, 1.0)[..., None], 0.0).to(q.dtype)",
                "acc / torch.where(seen, l, 1.0)[..., None], 0.0)")),
    ),
    Mistake(
        "half_accumulation", "accumulated in half precision",
        "m, l and acc should be kept in float32 for float16/bfloat16 inputs; yours are in the input dtype, "
        "where a running sum stops growing (in bfloat16, 256 + 1 = 256) and later keys are lost",
        "Cast each block of q, k, v to float32 before q·kᵀ and p·v, keep m, l, acc in float32, and cast only "
        "the output back to q's dtype.",
        edits=(("acc_dtype = torch.promote_types(q.dtype, torch.float32)", "acc_dtype = q.dtype"),),
    ),
]
