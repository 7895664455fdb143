"""Known mistakes of the exercise decoding (see posgrade.diagnosis.mistakes for how each is detected).

Most are edits of the reference: the failed case's calls (functions and the kv_cache and decode
probes, which drive the mutant's own KVCache and DecoderSelfAttention) are replayed on the edited
module. Using torch's own attention is seen in the torch_ops probe's report, whatever the call.
"""

from posgrade.diagnosis.mistakes import Mistake, torch_attention_found


_ROTATE_Q = "q = q * cos + torch.cat([-q[..., d // 2:], q[..., : d // 2]], dim=-1) * sin  # rotate_half"
_ROTATE_K = "k = k * cos + torch.cat([-k[..., d // 2:], k[..., : d // 2]], dim=-1) * sin"
_ATTEND = "out, _ = grouped_query_attention(q, k, v, causal=True)"
_SCALE = "scale = 1.0 / math.sqrt(q.shape[-1])"

MISTAKES = [
    Mistake(
        "uses_torch_sdpa", "torch's own attention called",
        "grouped_query_attention and DecoderSelfAttention must compute attention themselves; yours reach "
        "torch's own (F.scaled_dot_product_attention or nn.MultiheadAttention)",
        "Write it out: repeat_kv on k and v, logits = q @ k.transpose(-2, -1) / sqrt(d), a bottom-right causal "
        "mask with -inf, softmax over the keys, zero the rows with no key, then weights @ v.",
        matches=torch_attention_found,
    ),
    Mistake(
        "repeat_tiled", "kv heads tiled (repeat) instead of repeated in place (repeat_interleave)",
        "query head h should use kv head h // n_rep (kv heads 0, 0, 1, 1 for n_rep = 2); yours gives it kv head "
        "h % Hkv (0, 1, 0, 1), as x.repeat(1, n_rep, 1, 1) does",
        "x[:, :, None].expand(B, Hkv, n_rep, L, d).reshape(B, Hkv * n_rep, L, d), or "
        "x.repeat_interleave(n_rep, dim=1).",
        edits=(("return x[:, :, None].expand(B, Hkv, n_rep, L, d).reshape(B, Hkv * n_rep, L, d)",
                "return x.repeat(1, n_rep, 1, 1)"),),
    ),
    Mistake(
        "no_scale", "logits not scaled",
        "the logits should be q·kᵀ / sqrt(d) with d the head width; yours are the raw dot products",
        "Multiply q @ k.transpose(-2, -1) by 1 / math.sqrt(q.shape[-1]) before the softmax.",
        edits=((_SCALE, "scale = 1.0"),),
    ),
    Mistake(
        "scale_by_d_not_sqrt", "logits divided by d, not sqrt(d)",
        "the logits should be divided by sqrt(d); yours are divided by d, which flattens the attention",
        "The scale is 1 / math.sqrt(q.shape[-1]): the square root keeps the logits' variance at 1.",
        edits=((_SCALE, "scale = 1.0 / q.shape[-1]"),),
    ),
    Mistake(
        "scale_by_d_model", "logits scaled by sqrt(d_model), not by the head width",
        "each head's logits should be divided by sqrt(d) with d = d_model / n_heads, the head width; yours are "
        "divided by sqrt(d_model)",
        "Scale by 1 / math.sqrt(head_dim) (q.shape[-1] after the head split), as Llama's self.scaling = "
        "head_dim ** -0.5.",
        edits=((_ATTEND, "out, _ = grouped_query_attention(q * math.sqrt(d / D), k, v, causal=True)"),),
    ),
    Mistake(
        "causal_top_left", "causal mask aligned top-left",
        "with Lq new queries over Lk keys, query i sits at position Lk - Lq + i and sees keys j <= Lk - Lq + i; "
        "yours is tril(ones(Lq, Lk)) (query i at position i, like SDPA's is_causal), so a step after a "
        "prefill sees only the first keys",
        "Align bottom-right: torch.ones(Lq, Lk, dtype=torch.bool).tril(diagonal=Lk - Lq).",
        edits=(("q_pos = torch.arange(Lk - Lq, Lk, device=q.device)", "q_pos = torch.arange(Lq, device=q.device)"),),
    ),
    Mistake(
        "nan_fully_masked_rows", "NaN for a query with no allowed key",
        "a query whose keys are all masked should get zero weights and a zero output; yours gets NaN "
        "(softmax of a row of -inf is 0/0)",
        "Find the rows that are all -inf, give them finite logits for the softmax, and zero their weights "
        "afterwards.",
        edits=(("\n    logits = logits.masked_fill(dead, 0.0)", ""),
               ("weights = torch.softmax(logits, dim=-1).masked_fill(dead, 0.0).to(q.dtype)",
                "weights = torch.softmax(logits, dim=-1).to(q.dtype)")),
    ),
    Mistake(
        "cache_wrong_dim", "cache concatenated along the heads, not the length",
        "KVCache.update should append the new tokens along the length dim (-2 of [B, Hkv, L, d]); yours "
        "concatenates along dim 1, the heads, so the cache grows in heads and its length stays put",
        "torch.cat([self.k, k], dim=-2) (and the same for v): [B, Hkv, L_old, d] + [B, Hkv, L_new, d].",
        edits=(("self.k = torch.cat([self.k, k], dim=-2)", "self.k = torch.cat([self.k, k], dim=1)"),
               ("self.v = torch.cat([self.v, v], dim=-2)", "self.v = torch.cat([self.v, v], dim=1)")),
    ),
    Mistake(
        "cache_returns_new_only", "update returns only the new tokens",
        "KVCache.update should return every key and value cached so far; yours returns only the ones just "
        "given, so each decoding step attends to itself alone",
        "Store the concatenation and return it: self.k = torch.cat([self.k, k], dim=-2); return self.k, self.v.",
        edits=(("self.v = torch.cat([self.v, v], dim=-2)  # [B, Hkv, L_old + Ln, dv]\n        return self.k, self.v",
                "self.v = torch.cat([self.v, v], dim=-2)  # [B, Hkv, L_old + Ln, dv]\n        return k, v"),),
    ),
    Mistake(
        "rope_positions_restart", "RoPE positions restart at 0 with a cache",
        "the new tokens sit after the cached ones, at positions cache.length .. cache.length + L - 1; yours "
        "rotates them as if they were at 0 .. L-1, so every step after the first looks like position 0",
        "positions = torch.arange(past, past + L) with past = cache.length (0 without a cache), read before "
        "cache.update.",
        edits=(("positions = torch.arange(past, past + L, device=x.device)",
                "positions = torch.arange(L, device=x.device)"),),
    ),
    Mistake(
        "interleaved_rope", "interleaved RoPE instead of half-split",
        "Llama's RoPE (Hugging Face rotate_half) pairs x[i] with x[i + d/2]; yours rotates adjacent pairs "
        "(x[2i], x[2i+1]), the Meta/GPT-J layout, which gives other values with the same weights",
        "rotate_half(x) = cat(-x[..., d/2:], x[..., :d/2]) with cos, sin of cat(angles, angles); or "
        "apply_rope(x, positions, interleaved=False) from your rope exercise.",
        edits=(("angles = torch.cat([angles, angles], dim=-1)", "angles = angles.repeat_interleave(2, dim=-1)"),
               (_ROTATE_Q, "q = q * cos + torch.stack([-q[..., 1::2], q[..., 0::2]], dim=-1).flatten(-2) * sin"),
               (_ROTATE_K, "k = k * cos + torch.stack([-k[..., 1::2], k[..., 0::2]], dim=-1).flatten(-2) * sin")),
    ),
    Mistake(
        "rope_on_values", "RoPE applied to v too",
        "RoPE should rotate only q and k, so that their dot product sees the relative position; yours rotates "
        "v as well, which moves the content the heads return",
        "Rotate q and k after the head split, and leave v as it is.",
        edits=((_ROTATE_K, _ROTATE_K + "\n        v = v * cos + torch.cat([-v[..., d // 2:], v[..., : d // 2]], dim=-1) * sin"),),
    ),
    Mistake(
        "not_causal", "decoder attention not causal",
        "a decoder's token may attend only to itself and earlier tokens; yours lets the tokens of one call "
        "see the later ones, so the full forward differs from decoding token by token",
        "Call grouped_query_attention(q, k, v, causal=True): bottom-right aligned, it is right with and "
        "without a cache.",
        edits=((_ATTEND, "out, _ = grouped_query_attention(q, k, v, causal=False)"),),
    ),
]
