"""Known mistakes of the rope exercise (see posgrade.diagnosis.mistakes for how each is detected).

Mistakes of the angles themselves (cos/sin swapped, direction, frequencies, base) are edits of
rope_angles, so that they are named whether the learner made them there or only in apply_rope
(apply_rope of the reference builds its cos and sin with rope_angles)."""

from posgrade.diagnosis.mistakes import Mistake

_ANGLES_CALL = "cos, sin = rope_angles(positions, d, base, dtype=compute_dtype)"
_RETURN_ANGLES = "return torch.cos(angle), torch.sin(angle)"
_INV_FREQ = "inv_freq = 1.0 / (base ** (two_i / head_dim))"
_SPLIT = "xf = x.to(compute_dtype)\n"
_STACK = "out = torch.stack((y_a, y_b), dim=-1).flatten(-2)  # [..., L, d/2, 2] -> a, b, a, b, ..."
_CAT = "out = torch.cat((y_a, y_b), dim=-1)  # [..., L, d]: all a's, then all b's"

MISTAKES = [
    Mistake(
        "half_split_for_interleaved", "half-split pairs when interleaved ones are asked for",
        "interleaved=True should rotate the pairs (x[2i], x[2i+1]) (Meta LLaMA, GPT-J); yours rotates "
        "(x[i], x[i + d/2]) (HF rotate_half) whatever the flag says",
        "Follow the flag: with interleaved=True take x[..., 0::2] and x[..., 1::2] as the pair and "
        "interleave the results back (stack on a new last dim, then flatten).",
        edits=((_SPLIT, _SPLIT + "    interleaved = False  # the flag is ignored\n"),),
    ),
    Mistake(
        "adjacent_pairs_for_half_split", "adjacent pairs when half-split ones are asked for",
        "interleaved=False should rotate the pairs (x[i], x[i + d/2]) (GPT-NeoX, HF rotate_half); yours "
        "rotates (x[2i], x[2i+1]) whatever the flag says",
        "Follow the flag: with interleaved=False the pair is x[..., :d//2] and x[..., d//2:], and the "
        "result is cat(a', b'), not interleaved.",
        edits=((_SPLIT, _SPLIT + "    interleaved = True  # the flag is ignored\n"),),
    ),
    Mistake(
        "cat_freqs_for_interleaved", "cat(freqs, freqs) with interleaved pairs",
        "in the interleaved layout both coordinates of pair i (x[2i], x[2i+1]) turn by angle i; yours "
        "builds cos/sin with HF's cat(freqs, freqs), so x[2i] and x[2i+1] get the angles of "
        "different pairs",
        "cat(freqs, freqs) belongs with rotate_half (pairs i, i + d/2); rotate_every_two (pairs 2i, 2i+1) "
        "needs repeat_interleave(freqs, 2) so that columns 2i and 2i+1 share one angle.",
        edits=((_STACK, "cos_full, sin_full = torch.cat((cos, cos), dim=-1), torch.cat((sin, sin), dim=-1)\n"
                "        rotated = torch.stack((-xf[..., 1::2], xf[..., 0::2]), dim=-1).flatten(-2)\n"
                "        out = xf * cos_full + rotated * sin_full"),),
    ),
    Mistake(
        "repeat_interleave_for_half_split", "repeat_interleave(freqs) with half-split pairs",
        "in the half-split layout both coordinates of pair i (x[i], x[i + d/2]) turn by angle i; yours "
        "builds cos/sin with repeat_interleave(freqs, 2), so x[i] and x[i + d/2] get the angles of "
        "different pairs",
        "repeat_interleave(freqs, 2) belongs with rotate_every_two (pairs 2i, 2i+1); rotate_half "
        "(pairs i, i + d/2) needs cat(freqs, freqs) so that columns i and i + d/2 share one angle.",
        edits=((_CAT, "cos_full, sin_full = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)\n"
                "        rotated = torch.cat((-xf[..., d // 2 :], xf[..., : d // 2]), dim=-1)\n"
                "        out = xf * cos_full + rotated * sin_full"),),
    ),
    Mistake(
        "cos_sin_swapped", "cos and sin swapped",
        "a pair (a, b) at angle t should become (a cos t - b sin t, a sin t + b cos t); yours uses sin "
        "where cos belongs and the reverse, so position 0 turns every pair by 90 degrees instead of "
        "leaving it alone",
        "Check position 0: angle 0 gives cos = 1, sin = 0, and x must come back unchanged "
        "(and rope_angles returns (cos, sin) in that order).",
        edits=((_RETURN_ANGLES, "return torch.sin(angle), torch.cos(angle)"),),
    ),
    Mistake(
        "rotation_direction_flipped", "rotation runs backwards",
        "pair i at position m should turn by +m*theta_i, (a cos - b sin, a sin + b cos); yours turns by "
        "-m*theta_i: the sin terms have the wrong signs",
        "The rotation matrix is [[cos, -sin], [sin, cos]]: the minus goes on b's sin term in the first "
        "component, and the angle is +position * theta.",
        edits=((_RETURN_ANGLES, "return torch.cos(angle), -torch.sin(angle)"),),
    ),
    Mistake(
        "rotate_half_sign_dropped", "rotate_half without its minus sign",
        "the first coordinate of a pair should become a cos - b sin; yours is a cos + b sin, which is "
        "no rotation: lengths change and scores stop depending on m - n only",
        "rotate_half(x) = cat(-x2, x1) (rotate_every_two: (-x[2i+1], x[2i])): keep the minus on the "
        "second half.",
        edits=(("y_a = x_a * cos - x_b * sin", "y_a = x_a * cos + x_b * sin"),),
    ),
    Mistake(
        "freq_exponent_i_over_d", "frequency exponent i/d instead of 2i/d",
        "pair i should turn at theta_i = base^(-2i/d); yours uses base^(-i/d), so the slowest pair "
        "turns about sqrt(base) times too fast",
        "Take the exponent from the even dimension index: arange(0, d, 2) / d, not arange(d // 2) / d.",
        edits=((_INV_FREQ, "inv_freq = 1.0 / (base ** (two_i / 2 / head_dim))"),),
    ),
    Mistake(
        "freq_not_inverted", "frequencies not inverted",
        "theta_i should be 1 / base^(2i/d), shrinking with i; yours is base^(2i/d), so the angles "
        "explode instead of slowing down",
        "inv_freq = 1.0 / base ** (arange(0, d, 2) / d) (or base ** (-2i/d): note the minus).",
        edits=((_INV_FREQ, "inv_freq = base ** (two_i / head_dim)"),),
    ),
    Mistake(
        "base_ignored", "base argument ignored",
        "theta_i should be base^(-2i/d) with the base you are given (500000 in LLaMA 3); yours always "
        "uses 10000",
        "Use the base parameter in the frequencies, and pass it on from apply_rope to rope_angles.",
        edits=((_INV_FREQ, "inv_freq = 1.0 / (10000.0 ** (two_i / head_dim))"),),
    ),
    Mistake(
        "ignores_position_offset", "positions ignored",
        "row m should turn by positions[m] * theta_i (past_length + m with a KV cache); yours always "
        "uses arange(L), as if the new tokens sat at position 0",
        "Build the angles from the positions argument when it is given; arange(L) is only the default.",
        edits=((_ANGLES_CALL,
                "cos, sin = rope_angles(torch.arange(seq_len, device=x.device), d, base, dtype=compute_dtype)"),),
    ),
    Mistake(
        "angles_in_half_precision", "angles built in half precision",
        "for float16/bfloat16 x the angles, cos and sin should be computed in float32; yours builds them "
        "in x's dtype, and near position 1000 a bfloat16 angle is only good to a few radians",
        "Compute positions * theta, cos and sin in float32 (rope_angles(..., dtype=torch.float32)), rotate "
        "x.float(), and cast the result back to x.dtype once at the end.",
        edits=((_ANGLES_CALL, "cos, sin = rope_angles(positions, d, base, dtype=x.dtype)"),),
    ),
    Mistake(
        "returns_float32_for_half", "result not cast back to x's dtype",
        "apply_rope should return x's dtype; yours returns the float32 it computed in for float16/"
        "bfloat16 x",
        "Compute in float32 if you like (the angles must be), then return out.to(x.dtype).",
        edits=(("return out.to(x.dtype)", "return out"),),
    ),
    Mistake(
        "complex_view_in_bfloat16", "view_as_complex on bfloat16 x",
        "apply_rope must work for bfloat16 x; yours views x as complex numbers directly, and "
        "torch.view_as_complex has no bfloat16 version (it raises)",
        "View a float32 copy: torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2)), rotate, "
        "then view_as_real(...).flatten(-2).to(x.dtype) (Meta LLaMA's .float() and .type_as(xq)).",
        edits=(("    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32\n",
                "    if interleaved:\n"
                "        torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))  # raises for bfloat16\n"
                "    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32\n"),),
    ),
]
