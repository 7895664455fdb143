"""Known mistakes of the exercise rope_scaling (see posgrade.diagnosis.mistakes for how each is detected).

Mistakes of the frequencies are edits of rope_inv_freq, those of the angles edits of
scaled_rope_angles. A mistake that only moves the slow pairs (frequencies of 1e-3 and less) is
named by the angle cases, at positions where those pairs have turned far enough to show it."""

from posgrade.diagnosis.mistakes import Mistake

_LINEAR = "return 1.0 / (base ** (two_i / d)) / factor, 1.0"
_SEQ_LEN = "seq_len = original if seq_len is None else max(seq_len, original)"
_NTK_BASE = "ntk_base = base * ((factor * seq_len / original) - (factor - 1)) ** (d / (d - 2))"
_ANGLES_SEQ_LEN = 'seq_len = int(positions.max()) + 1 if positions.numel() else None  # "dynamic" rescales by it'
_ANGLE = "angle = positions.float()[:, None] * inv_freq[None, :]  # [L, d/2]"
_SCALED = "return torch.cos(angle) * attention_factor, torch.sin(angle) * attention_factor"
_RAMP = "extrapolation = 1 - ramp.to(device)  # 1 where the pair keeps theta_i (fast pairs)"
_BANDS = "inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)"
_THRESHOLDS = "low_freq_wavelen = original / low_freq_factor\n    high_freq_wavelen = original / high_freq_factor"

MISTAKES = [
    Mistake(
        "linear_multiplies", "linear scaling multiplies the frequencies",
        "linear (position interpolation) should divide every frequency by factor, so that factor times "
        "more positions fit in the trained angles; yours multiplies them, so pairs turn factor times faster",
        "Dividing the positions by factor is the same as dividing inv_freq by factor: inv_freq / factor.",
        edits=((_LINEAR, "return 1.0 / (base ** (two_i / d)) * factor, 1.0"),),
    ),
    Mistake(
        "linear_positions_too", "linear scaling applied twice",
        "linear should scale the angles by 1/factor once; yours divides the frequencies by factor and the "
        "positions by factor as well, so every angle shrinks by factor squared",
        "Either divide the positions or the frequencies by factor, not both: rope_inv_freq already divides "
        "inv_freq, so scaled_rope_angles uses the positions as they are.",
        edits=((_ANGLE, 'if scaling and scaling.get("rope_type") == "linear":\n'
                '        positions = positions / scaling["factor"]  # interpolate the positions too\n'
                "    " + _ANGLE),),
    ),
    Mistake(
        "dynamic_below_original", "dynamic NTK rescales below the original length",
        "dynamic should keep the default frequencies while seq_len <= original_max_position_embeddings; "
        "yours applies the NTK formula to every seq_len, which shrinks the base below the original length",
        "Use seq_len = max(seq_len, original_max_position_embeddings) in the formula, as HF does: at the "
        "original length the bracket is exactly 1 and the base is unchanged.",
        edits=((_SEQ_LEN, "seq_len = original if seq_len is None else seq_len"),),
    ),
    Mistake(
        "ntk_exponent_dropped", "NTK base without the exponent d/(d-2)",
        "dynamic should enlarge the base to base * (factor * seq_len / L_orig - (factor - 1)) ^ (d / (d - 2)); "
        "yours leaves out the exponent d / (d - 2), so the slowest pair is not slowed by the full amount",
        "The exponent d/(d-2) makes the slowest pair (i = d/2 - 1, exponent (d-2)/d) scale by exactly the "
        "bracket: base' = base * bracket ** (d / (d - 2)).",
        edits=((_NTK_BASE, "ntk_base = base * ((factor * seq_len / original) - (factor - 1))"),),
    ),
    Mistake(
        "dynamic_angles_without_seq_len", "scaled_rope_angles never rescales dynamic",
        "scaled_rope_angles should pass seq_len = max(positions) + 1 to rope_inv_freq, so that dynamic "
        "rescales past the original length; yours passes none, and positions past it get the default "
        "frequencies",
        "seq_len = int(positions.max()) + 1, then rope_inv_freq(head_dim, base, scaling, seq_len).",
        edits=((_ANGLES_SEQ_LEN, "seq_len = None  # never passed on"),),
    ),
    Mistake(
        "dynamic_seq_len_is_length", "dynamic seq_len taken as the number of positions",
        "for dynamic the sequence length is max(positions) + 1 (the furthest position seen, as HF's "
        "dynamic_rope_update takes it); yours uses len(positions), which is too short once positions "
        "start at an offset (a KV cache)",
        "seq_len = int(positions.max()) + 1, not positions.shape[0].",
        edits=((_ANGLES_SEQ_LEN, "seq_len = positions.shape[0]  # the number of positions"),),
    ),
    Mistake(
        "yarn_ramp_reversed", "YaRN ramp the wrong way round",
        "yarn should keep theta_i for the fast pairs (index below low) and divide the slow ones (above high) "
        "by factor; yours divides the fast pairs and keeps the slow ones",
        "ramp_i = clamp((i - low) / (high - low), 0, 1) is 0 for the fast pairs: theta_i' = theta_i / factor "
        "* ramp_i + theta_i * (1 - ramp_i).",
        edits=((_RAMP, "extrapolation = ramp.to(device)  # the ramp used the wrong way round"),),
    ),
    Mistake(
        "yarn_truncate_ignored", "YaRN truncate ignored",
        "yarn should floor low and ceil high only when truncate is True (the default); with truncate False "
        "the ramp runs between the exact correction dimensions, and yours rounds them anyway",
        'if scaling.get("truncate", True): low, high = floor(low), ceil(high); otherwise keep the floats.',
        edits=(('if scaling.get("truncate", True):', "if True:  # truncate ignored"),),
    ),
    Mistake(
        "yarn_attention_factor_ignored", "YaRN's given attention_factor ignored",
        "yarn should use the attention_factor key when the dict gives one; yours always computes "
        "0.1 * ln(factor) + 1 (or the mscale ratio)",
        "Read scaling.get(\"attention_factor\") first; compute the factor only when it is None.",
        edits=(('attention_factor = scaling.get("attention_factor")',
                "attention_factor = None  # the given attention factor is ignored"),),
    ),
    Mistake(
        "yarn_mscale_ignored", "YaRN's mscale and mscale_all_dim ignored",
        "when both mscale and mscale_all_dim are given (DeepSeek), yarn's attention factor should be "
        "(0.1 * mscale * ln(factor) + 1) / (0.1 * mscale_all_dim * ln(factor) + 1); yours uses "
        "0.1 * ln(factor) + 1",
        "if mscale and mscale_all_dim: the ratio of the two temperatures; otherwise 0.1 * ln(factor) + 1.",
        edits=(("if mscale and mscale_all_dim:  # DeepSeek: a ratio of two temperatures",
                "if False:  # mscale and mscale_all_dim ignored"),),
    ),
    Mistake(
        "attention_factor_dropped", "attention factor dropped",
        "cos and sin should both be multiplied by the attention factor (yarn: 0.1 * ln(factor) + 1); "
        "yours returns plain cos and sin",
        "cos = cos(angle) * attention_factor and sin = sin(angle) * attention_factor, as HF's "
        "LlamaRotaryEmbedding multiplies by attention_scaling.",
        edits=((_SCALED, "return torch.cos(angle), torch.sin(angle)"),),
    ),
    Mistake(
        "attention_factor_on_cos_only", "attention factor on cos only",
        "both cos and sin should be multiplied by the attention factor; yours scales cos and leaves sin, "
        "which is no longer a scaled rotation",
        "Scale both: the rotation [[cos, -sin], [sin, cos]] times the factor is what yarn asks for.",
        edits=((_SCALED, "return torch.cos(angle) * attention_factor, torch.sin(angle)"),),
    ),
    Mistake(
        "attention_factor_twice", "attention factor applied twice",
        "cos and sin should be multiplied by the attention factor once; yours multiplies them by its square",
        "Multiply once, in scaled_rope_angles (rope_inv_freq returns the factor, it does not apply it).",
        edits=((_SCALED, "return torch.cos(angle) * attention_factor**2, torch.sin(angle) * attention_factor**2"),),
    ),
    Mistake(
        "llama3_bands_swapped", "Llama 3 bands swapped",
        "llama3 should divide the long wavelengths (wavelen > L_orig / low_freq_factor) by factor and keep "
        "the short ones; yours divides the short wavelengths (the fast pairs) instead",
        "Long wavelength = slow pair = divide by factor: torch.where(wavelen > L_orig / low_freq_factor, "
        "inv_freq / factor, inv_freq).",
        edits=((_BANDS, "inv_freq_llama = torch.where(wavelen < high_freq_wavelen, inv_freq / factor, inv_freq)"),),
    ),
    Mistake(
        "llama3_wavelen_without_2pi", "Llama 3 wavelength without 2 pi",
        "llama3 should compare the wavelength 2 pi / theta_i with the thresholds; yours uses 1 / theta_i, "
        "so the bands move by a factor 2 pi and too many pairs keep their frequency",
        "wavelen = 2 * math.pi / inv_freq: a pair turning at theta_i rad per position repeats every "
        "2 pi / theta_i positions.",
        edits=(("wavelen = 2 * math.pi / inv_freq", "wavelen = 1 / inv_freq"),),
    ),
    Mistake(
        "llama3_thresholds_swapped", "Llama 3 thresholds swapped",
        "llama3's long-wavelength threshold is L_orig / low_freq_factor and the short one L_orig / "
        "high_freq_factor; yours swaps them, so the middle band is empty and its pairs are divided by "
        "factor instead of blended",
        "low_freq_factor (1) gives the long threshold L_orig / 1; high_freq_factor (4) the short one L_orig / 4.",
        edits=((_THRESHOLDS, "low_freq_wavelen = original / high_freq_factor\n"
                "    high_freq_wavelen = original / low_freq_factor"),),
    ),
]
