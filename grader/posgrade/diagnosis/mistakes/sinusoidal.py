"""Known mistakes of the sinusoidal exercise (see posgrade.diagnosis.mistakes for how each is detected)."""

from posgrade.diagnosis.mistakes import Mistake

MISTAKES = [
    Mistake(
        "sin_cos_swapped", "sin and cos swapped",
        "even columns should hold sin and odd columns cos; yours are the other way round",
        "table[:, 0::2] = sin(angle), table[:, 1::2] = cos(angle): row 0 is then [0, 1, 0, 1, ...].",
        edits=(("table[:, 0::2] = torch.sin(angle)", "table[:, 0::2] = torch.cos(angle)"),
               ("table[:, 1::2] = torch.cos(angle[:, : d_model // 2])",
                "table[:, 1::2] = torch.sin(angle[:, : d_model // 2])")),
    ),
    Mistake(
        "exponent_i_over_d", "frequency exponent i/d instead of 2i/d",
        "pair i should turn at base^(-2i/d_model); yours uses base^(-i/d_model), so the wavelengths "
        "stop growing halfway",
        "Take the exponent from the even column index 2i (arange(0, d_model, 2)), not from i.",
        edits=(("inv_freq = torch.exp(two_i * (-math.log(base) / d_model))",
                "inv_freq = torch.exp(two_i / 2 * (-math.log(base) / d_model))"),),
    ),
    Mistake(
        "exponent_raw_column", "each column uses its own index as the exponent",
        "column j should use the pair's exponent 2*(j//2)/d_model, so sin and cos of a pair share one "
        "frequency; yours gives the cos column the exponent of the next column",
        "Compute one frequency per pair (arange(0, d_model, 2)) and use it for both columns 2i and 2i+1.",
        edits=(("table[:, 1::2] = torch.cos(angle[:, : d_model // 2])",
                "table[:, 1::2] = torch.cos(pos * torch.exp(torch.arange(1, d_model, 2, dtype=torch.float32)"
                " * (-math.log(base) / d_model)))"),),
    ),
    Mistake(
        "frequency_not_inverted", "frequencies not inverted",
        "the angle is pos / base^(2i/d_model); yours multiplies by base^(2i/d_model), so the angles "
        "explode instead of slowing down",
        "inv_freq = base ** (-2i / d_model) (note the minus), then angle = pos * inv_freq.",
        edits=(("inv_freq = torch.exp(two_i * (-math.log(base) / d_model))",
                "inv_freq = torch.exp(two_i * (math.log(base) / d_model))"),),
    ),
    Mistake(
        "halves_concatenated", "sines and cosines in two halves",
        "the sines of the pairs go in the even columns and the cosines in the odd ones (interleaved); "
        "yours puts all sines first and all cosines after (tensor2tensor's layout, not the paper's)",
        "Write table[:, 0::2] = sin(angle) and table[:, 1::2] = cos(angle) instead of torch.cat([sin, cos]).",
        edits=(("table[:, 0::2] = torch.sin(angle)", "table[:, : (d_model + 1) // 2] = torch.sin(angle)"),
               ("table[:, 1::2] = torch.cos(angle[:, : d_model // 2])",
                "table[:, (d_model + 1) // 2 :] = torch.cos(angle[:, : d_model // 2])")),
    ),
    Mistake(
        "row_zero_zeroed", "row 0 zeroed",
        "position 0 is a real position whose row is [0, 1, 0, 1, ...] (sin 0, cos 0); yours is all zeros",
        "Do not blank row 0 as padding: cos(0) = 1 belongs in the odd columns.",
        edits=(("    return table\n", "    table[:1] = 0.0\n    return table\n"),),
    ),
    Mistake(
        "ignores_offset", "offset ignored",
        "forward(x, offset) should add rows offset .. offset+L-1; yours always adds rows 0 .. L-1",
        "Slice the table with the offset: table[offset : offset + L].",
        edits=(("pe = self.table[offset : offset + seq_len]", "pe = self.table[:seq_len]"),),
    ),
    Mistake(
        "upcast_dtype", "result not cast to x's dtype",
        "half-precision input should come back in its own dtype; yours comes back as float32 because "
        "the float32 table is added without a cast",
        "Cast the slice first: x + pe.to(device=x.device, dtype=x.dtype).",
        edits=(("return x + pe.to(device=x.device, dtype=x.dtype)", "return x + pe.to(device=x.device)"),),
    ),
    Mistake(
        "persistent_buffer", "table saved in the state_dict",
        "the table is fixed and cheap to rebuild, so it should be a non-persistent buffer; yours is "
        "persistent and lands in every checkpoint",
        "self.register_buffer(\"table\", table, persistent=False).",
        edits=(("sinusoidal_table(max_len, d_model, base), persistent=False)",
                "sinusoidal_table(max_len, d_model, base))"),),
    ),
    Mistake(
        "table_as_parameter", "table is a trainable parameter",
        "a sinusoidal encoding is fixed; yours makes the table an nn.Parameter, so an optimiser would "
        "train it and the checkpoint carries it",
        "Use self.register_buffer(\"table\", table, persistent=False) instead of nn.Parameter.",
        edits=(("self.register_buffer(\"table\", sinusoidal_table(max_len, d_model, base), persistent=False)",
                "self.table = nn.Parameter(sinusoidal_table(max_len, d_model, base))"),),
    ),
    Mistake(
        "base_ignored", "base argument ignored",
        "the wavelengths should come from the base you are given, base^(-2i/d_model); yours always use "
        "10000, whatever base is",
        "Use the base parameter in the frequencies: exp(2i * -log(base) / d_model), not log(10000.0).",
        edits=(("inv_freq = torch.exp(two_i * (-math.log(base) / d_model))",
                "inv_freq = torch.exp(two_i * (-math.log(10000.0) / d_model))"),),
    ),
    Mistake(
        "odd_d_model_crash", "odd d_model not handled",
        "with an odd d_model the sines take ceil(d/2) columns (0, 2, ..., d-1) and the cosines floor(d/2); "
        "yours writes ceil(d/2) cosines into floor(d/2) odd columns, which raises a shape error",
        "Cut the angles for the cosines: table[:, 1::2] = cos(angle[:, : d_model // 2]).",
        edits=(("table[:, 1::2] = torch.cos(angle[:, : d_model // 2])", "table[:, 1::2] = torch.cos(angle)"),),
    ),
]
