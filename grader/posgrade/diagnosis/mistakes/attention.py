"""Known mistakes of the attention exercise (see posgrade.diagnosis.mistakes for how each is detected).

Most are edits of the reference: the failed case's calls (functions and module probes) are
replayed on the edited module. MultiHeadAttention's mutants compose the other reference
solutions, so they name a mistake in attention.py, never one in the files it imports.
Using torch's own attention is seen in the torch_ops probe's report, whatever the call.
"""

from posgrade.diagnosis.mistakes import Mistake, torch_attention_found


MISTAKES = [
    Mistake(
        "uses_torch_sdpa", "torch's own attention called",
        "scaled_dot_product_attention and MultiHeadAttention must compute attention themselves; yours "
        "reach torch's own (F.scaled_dot_product_attention or nn.MultiheadAttention)",
        "Write it out: logits = q @ k.transpose(-2, -1) / sqrt(d), add the bias, fill masked logits with "
        "-inf, softmax over the keys (dim=-1), zero the rows with no key, then weights @ v.",
        matches=torch_attention_found,
    ),
    Mistake(
        "no_scale", "logits not scaled",
        "the logits should be q·kᵀ / sqrt(d) with d = q.shape[-1]; yours are the raw dot products, so "
        "the softmax saturates as the head width grows",
        "Multiply q @ k.transpose(-2, -1) by 1 / math.sqrt(q.shape[-1]) before the bias and the softmax.",
        edits=(("scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0"),),
    ),
    Mistake(
        "scale_by_d_not_sqrt", "logits divided by d, not sqrt(d)",
        "the logits should be divided by sqrt(d); yours are divided by d, which flattens the attention",
        "The scale is 1 / math.sqrt(q.shape[-1]): the square root keeps the logits' variance at 1.",
        edits=(("scale = 1.0 / math.sqrt(q.shape[-1])", "scale = 1.0 / q.shape[-1]"),),
    ),
    Mistake(
        "softmax_over_queries", "softmax over the queries",
        "each query's weights should be a softmax over the keys (the last dim); yours normalise each key's "
        "column over the queries (dim=-2)",
        "torch.softmax(logits, dim=-1): logits are [..., Lq, Lk] and a query distributes its attention "
        "over the keys.",
        edits=(("weights = torch.softmax(logits, dim=-1)", "weights = torch.softmax(logits, dim=-2)"),),
    ),
    Mistake(
        "causal_mask_future", "causal mask marks the future",
        "causal_mask should be True where a query MAY attend, keys j <= Lk - Lq + i (the past and itself); "
        "yours is True for the keys after the query (triu), the keys it must not see",
        "torch.ones(Lq, Lk, dtype=torch.bool).tril(diagonal=Lk - Lq): lower triangle, True = may attend.",
        edits=(("return k_pos[None, :] <= q_pos[:, None]  # [Lq, Lk]", "return k_pos[None, :] > q_pos[:, None]"),),
    ),
    Mistake(
        "mask_inverted", "mask read as True = ignore",
        "a bool mask here means True = may attend; yours hides the keys where it is True "
        "(nn.MultiheadAttention's convention)",
        "Keep the logits where mask is True: torch.where(mask, logits, -inf), or "
        "logits.masked_fill(~mask, -inf).",
        edits=(("logits = torch.where(mask, logits, float(\"-inf\"))",
                "logits = torch.where(mask, float(\"-inf\"), logits)"),),
    ),
    Mistake(
        "mask_after_softmax", "mask applied after the softmax",
        "masked keys should be removed before the softmax, so the allowed keys share all the attention; "
        "yours zero them after it, and a query's weights sum to less than 1",
        "Fill the masked logits with -inf before torch.softmax, not the weights after it.",
        edits=(("logits = torch.where(mask, logits, float(\"-inf\"))", "pass"),
               ("weights = torch.softmax(logits, dim=-1).masked_fill(dead, 0.0)",
                "weights = torch.softmax(logits, dim=-1).masked_fill(dead, 0.0)\n"
                "    if mask is not None:\n"
                "        weights = torch.where(mask, weights, 0.0)")),
    ),
    Mistake(
        "nan_fully_masked_rows", "NaN for a query with no allowed key",
        "a query whose keys are all masked should get zero weights and a zero output; yours gets NaN "
        "(softmax of a row of -inf is 0/0)",
        "Find the rows that are all -inf, give them finite logits for the softmax, and zero their weights "
        "afterwards (masked_fill), so neither forward nor backward sees NaN.",
        edits=(("\n    logits = logits.masked_fill(dead, 0.0)", ""),
               ("weights = torch.softmax(logits, dim=-1).masked_fill(dead, 0.0)",
                "weights = torch.softmax(logits, dim=-1)")),
    ),
    Mistake(
        "causal_top_left", "causal mask aligned top-left",
        "query i of causal_mask(Lq, Lk) sits at position Lk - Lq + i and sees keys j <= Lk - Lq + i; yours "
        "is tril(ones(Lq, Lk)) (query i at position i, like SDPA's is_causal), wrong with a KV cache",
        "Align bottom-right: torch.ones(Lq, Lk, dtype=torch.bool).tril(diagonal=Lk - Lq), or compare "
        "key positions with arange(Lk - Lq, Lk).",
        edits=(("q_pos = torch.arange(len_k - len_q, len_k, device=device)",
                "q_pos = torch.arange(len_q, device=device)"),),
    ),
    Mistake(
        "heads_merged_wrong_order", "heads merged in the wrong order",
        "the heads' outputs [B, H, L, d] should go back to [B, L, H, d] before the reshape to [B, L, D]; "
        "yours reshapes [B, H, L, d] directly, mixing positions and heads",
        "Merge with out.transpose(1, 2).reshape(B, L, D), the exact inverse of the split "
        "view(B, L, H, d).transpose(1, 2).",
        edits=(("out = out.transpose(1, 2).reshape(B, L, D)", "out = out.reshape(B, L, D)"),),
    ),
    Mistake(
        "causal_dropped_with_mask", "causal mask dropped when a mask is given",
        "with causal=True and a mask, both should apply (mask AND causal_mask(L, L)); yours uses the mask "
        "alone, so earlier tokens see later ones",
        "Combine them: mask = causal_m if mask is None else mask & causal_m.",
        edits=(("mask = causal_m if mask is None else mask & causal_m",
                "mask = causal_m if mask is None else mask"),),
    ),
    Mistake(
        "dropout_in_eval", "dropout applied in eval()",
        "attention dropout should act only in training mode; yours drops weights in eval() too, because "
        "functional dropout does not look at self.training",
        "Pass dropout_p = self.dropout if self.training else 0.0 (or use an nn.Dropout submodule).",
        edits=(("dropout_p = self.dropout if self.training else 0.0", "dropout_p = self.dropout"),),
    ),
    Mistake(
        "rope_on_values", "RoPE applied to v too",
        "RoPE should rotate only q and k, so that their dot product sees the relative position; yours "
        "rotates v as well, which moves the content the heads return",
        "Call apply_rope on q and k after the head split, and leave v as it is.",
        edits=(("k = apply_rope(k, base=self.rope_base, interleaved=True)",
                "k = apply_rope(k, base=self.rope_base, interleaved=True)\n"
                "                v = apply_rope(v, base=self.rope_base, interleaved=True)"),),
    ),
    Mistake(
        "alibi_bias_scaled", "ALiBi bias divided by sqrt(d)",
        "the ALiBi bias should be added to q·kᵀ / sqrt(d) as it is; yours is divided by sqrt(d) with the "
        "logits, which weakens every head's slope",
        "Scale only q·kᵀ, then add alibi_bias(H, L, L) unscaled (pass it as bias=).",
        edits=(("bias = alibi_bias(H, L, L, device=x.device)",
                "bias = alibi_bias(H, L, L, device=x.device) / math.sqrt(d)"),),
    ),
    Mistake(
        "bias_ignored", "bias argument ignored",
        "the additive bias (ALiBi, T5, a float mask) should be added to the scaled logits; yours never "
        "adds it, so attention is computed as if bias were None",
        "if bias is not None: logits = logits + bias, after the 1/sqrt(d) scaling and before the mask.",
        edits=(("        logits = logits + bias\n", "        logits = logits\n"),),
    ),
    Mistake(
        "mask_ignored", "mask argument ignored",
        "keys where the bool mask is False must get no weight; yours never applies the mask, so every "
        "query attends every key",
        "logits = torch.where(mask, logits, float(\"-inf\")) before the softmax, when mask is not None.",
        edits=(("logits = torch.where(mask, logits, float(\"-inf\"))", "pass"),),
    ),
    Mistake(
        "causal_ignored", "causal=True ignored",
        "forward(x, causal=True) should apply causal_mask(L, L), so no query sees a later key; yours "
        "ignores causal and every query sees the whole sequence",
        "if causal: mask = causal_mask(L, L, device=x.device), ANDed with mask when one is given.",
        edits=(("        if causal:\n            causal_m", "        if False:\n            causal_m"),),
    ),
    Mistake(
        "fill_overflows_half", "mask filled with -1e9 in the input's dtype",
        "masked logits should be -inf (or the dtype's own minimum); yours fills them with -1e9 in the input "
        "dtype, which float16 cannot hold (its largest value is 65504), so half-precision inputs fail",
        "Fill with float(\"-inf\") or torch.finfo(logits.dtype).min, or fill after casting the logits to float32.",
        edits=(("    logits = q @ k.transpose(-2, -1)  # [..., Lq, Lk]\n",
                "    logits = q @ k.transpose(-2, -1)  # [..., Lq, Lk]\n"
                "    if mask is not None:\n"
                "        logits = logits.masked_fill(~mask, -1e9)\n"),),
    ),
    Mistake(
        "assumes_4d", "only 4-D inputs work",
        "q, k, v may have any number of leading dims ([..., L, d]) and k, v broadcast against q; yours "
        "unpacks q.shape as (B, H, L, d), so 2-D, 3-D or 5-D inputs fail",
        "Use only the last two dims (q.shape[-1], k.transpose(-2, -1)) and let matmul broadcast the rest.",
        edits=(("    scale = 1.0 / math.sqrt(q.shape[-1])", "    B, H, Lq, _ = q.shape\n    B, H, Lk, _ = k.shape\n"
                "    scale = 1.0 / math.sqrt(q.shape[-1])"),),
    ),
    Mistake(
        "rel_v_from_rel_k", "value term built from rel_k",
        "position='relative' should use two tables, rel_k for the logits and rel_v for the values; yours "
        "passes rel_k's embeddings as the value term too, so rel_v is never used",
        "relative_attention(q, k, v, self.rel_k(L, L), self.rel_v(L, L), mask=mask).",
        edits=(("self.rel_k(L, L), self.rel_v(L, L), mask=mask)", "self.rel_k(L, L), self.rel_k(L, L), mask=mask)"),),
    ),
    Mistake(
        "masked_row_uniform", "fully masked row averages every key",
        "a query whose keys are all masked should get zero weights and a zero output; yours fills masked "
        "logits with a large finite negative number (-1e9), so such a row's softmax spreads its weight "
        "uniformly over the masked keys",
        "Fill with -inf (or finfo.min) and zero the weights of rows with no allowed key after the softmax.",
        edits=(("logits = torch.where(mask, logits, float(\"-inf\"))", "logits = torch.where(mask, logits, -1e9)"),),
    ),
    Mistake(
        "rope_base_ignored", "rope_base ignored",
        "position='rope' should rotate with the module's rope_base; yours calls apply_rope with its default "
        "base 10000, whatever rope_base the module was built with",
        "Keep rope_base in __init__ (self.rope_base) and pass base=self.rope_base to apply_rope for q and k.",
        edits=(("q = apply_rope(q, base=self.rope_base, interleaved=True)", "q = apply_rope(q, interleaved=True)"),
               ("k = apply_rope(k, base=self.rope_base, interleaved=True)", "k = apply_rope(k, interleaved=True)")),
    ),
    Mistake(
        "projections_cloned", "projections start as copies of one layer",
        "q_proj, k_proj, v_proj and out_proj should each start from their own random weights; yours start "
        "from one layer copied (copy.deepcopy or [layer] * 4), so queries, keys and values start identical",
        "Make four layers: self.q_proj = nn.Linear(D, D), self.k_proj = nn.Linear(D, D), and so on.",
        edits=(("        self.out_proj = nn.Linear(d_model, d_model)\n",
                "        self.out_proj = nn.Linear(d_model, d_model)\n"
                "        for layer in (self.k_proj, self.v_proj, self.out_proj):  # copies of q_proj\n"
                "            layer.load_state_dict(self.q_proj.state_dict())\n"),),
    ),
]
