"""Mistake: the frequencies are created on the GPU (device="cuda") whatever device is asked for, so CPU callers (and machines without CUDA) fail.
Caught by: test_keeps_device

A real wrong implementation for posgrade's own tests: the reference with a hard-coded device.

rope_scaling — extending RoPE past the length it was trained on.

A RoPE model trained on L_orig positions has only ever seen angles m * theta_i with m < L_orig.
Run it at 4x that length and the slow pairs (small theta_i) turn further than they ever did in
training; quality collapses. Scaling methods change the frequencies theta_i (called inv_freq
in Hugging Face) so that a longer context maps back into the angles the model knows, and some
also scale cos and sin by an "attention factor". transformers names each method by its
rope_type and computes it in ROPE_INIT_FUNCTIONS (transformers/modeling_rope_utils.py); this
exercise computes exactly the same numbers from the same parameter dict.

    default   theta_i = base^(-2i/d),  i = 0 .. d/2 - 1                     (Su et al. 2021)
    linear    theta_i / factor: every position is divided by factor        (position interpolation,
              kaiokendev; Chen et al. 2023). Simple, but the fast pairs lose resolution too.
    dynamic   NTK-aware: enlarge the base instead, only once the sequence is longer than
              L_orig (seq_len > L_orig):
                  base' = base * (factor * seq_len / L_orig - (factor - 1)) ^ (d / (d - 2))
              and theta_i = base'^(-2i/d); for seq_len <= L_orig the default frequencies
              (/u/bloc97, /u/emozilla). The fastest pair (i = 0) never changes.
    yarn      per-band (Peng et al. 2023): pairs that turn many times over L_orig keep theta_i,
              pairs that turn less than once are divided by factor, and a linear ramp over the
              pair index blends the two in between. The ramp's ends are the pair indices at
              which a pair turns beta_fast (32) and beta_slow (1) times over L_orig:
                  dim(r) = d * ln(L_orig / (2 pi r)) / (2 ln base)
                  low = floor(dim(beta_fast)), high = ceil(dim(beta_slow))  (no rounding if
                  truncate is False), then low = max(low, 0), high = min(high, d - 1)
                  ramp_i = clamp((i - low) / (high - low), 0, 1)   (high += 0.001 if equal)
                  theta_i' = theta_i / factor * ramp_i + theta_i * (1 - ramp_i)
              and an attention factor 0.1 * ln(factor) + 1 (1 when factor <= 1) that
              multiplies cos and sin.
    llama3    Llama 3.1 (Meta; HF _compute_llama3_parameters): by wavelength 2 pi / theta_i:
                  wavelen < L_orig / high_freq_factor   keep theta_i (fast pairs)
                  wavelen > L_orig / low_freq_factor    theta_i / factor (slow pairs)
                  otherwise   s = (L_orig / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
                              theta_i' = (1 - s) * theta_i / factor + s * theta_i
              Llama 3.1 uses base 500000, factor 8, low 1, high 4, L_orig 8192.

Worked example, d = 8, base = 10000: default theta = [1, 0.1, 0.01, 0.001].
    linear, factor 4:                        [0.25, 0.025, 0.0025, 0.00025]
    dynamic, factor 4, L_orig 16, seq_len 32: base' = 10000 * (4 * 32 / 16 - 3)^(8/6) = 85498.8,
                                             theta = [1, 0.05848, 0.00342, 0.000200]
                                             (seq_len <= 16: the default theta)
    yarn, factor 4, L_orig 64: dim(32) = -0.497, dim(1) = 1.008, so low = 0, high = 2,
                                             ramp = [0, 0.5, 1, 1],
                                             theta = [1, 0.0625, 0.0025, 0.00025],
                                             attention factor 0.1 * ln 4 + 1 = 1.1386
    llama3, factor 4, low 1, high 4, L_orig 64: wavelengths [6.28, 62.8, 628, 6283] against
                                             64 / 4 = 16 and 64 / 1 = 64: [keep, smooth, / 4, / 4],
                                             s = (64 / 62.83 - 1) / 3 = 0.0062,
                                             theta = [1, 0.02546, 0.0025, 0.00025]

Pitfalls:
  * dividing the positions by factor AND the frequencies: the two are the same thing, do one;
  * dynamic: forgetting the exponent d/(d-2), or rescaling below L_orig (below it the model
    must see its own default frequencies);
  * yarn: the ramp the wrong way round (fast pairs must keep theta_i), ignoring truncate, or
    forgetting the attention factor (or applying it to cos only, or twice);
  * llama3: comparing frequencies where wavelengths are meant (wavelen = 2 pi / theta, the 2 pi
    included), or the two thresholds swapped.
"""

import math

import torch


def rope_inv_freq(head_dim, base=10000.0, scaling=None, seq_len=None, device=None):
    """The frequencies theta_i (inv_freq) and the attention factor of a RoPE scaling method.

    Args:
        head_dim: int d, even and >= 2 (>= 4 for "dynamic", whose exponent is d / (d - 2)).
        base: float > 0, the RoPE base (HF's rope_theta; 10000, 500000 for Llama 3). A
            "rope_theta" key in scaling is not read: base is the theta.
        scaling: None (the default RoPE) or a dict in Hugging Face's rope_parameters
            (rope_scaling) form. "rope_type" (missing: "default", as in HF) is one of
              "default"  no other key;
              "linear"   "factor";
              "dynamic"  "factor", "original_max_position_embeddings" (the length the model
                         was trained on; HF reads it from config.max_position_embeddings);
              "yarn"     "factor", "original_max_position_embeddings", and optionally
                         "beta_fast" (default 32), "beta_slow" (default 1), "attention_factor",
                         "mscale", "mscale_all_dim", "truncate" (default True);
              "llama3"   "factor", "low_freq_factor", "high_freq_factor",
                         "original_max_position_embeddings".
            An optional key that is None counts as absent (as in HF); other keys are not read.
        seq_len: int or None, the sequence length; only "dynamic" reads it (None: L_orig).
        device: where to create inv_freq (None = the CPU).

    Returns:
        (inv_freq, attention_factor): inv_freq a float32 Tensor [d // 2] on `device`, the
        per-pair frequencies; attention_factor a Python float that multiplies cos and sin:
        1.0 except for "yarn", where it is the "attention_factor" key if given, else
        0.1 * mscale * ln(factor) + 1 over the same with mscale_all_dim when both "mscale" and
        "mscale_all_dim" are given, else 0.1 * ln(factor) + 1 (1.0 when factor <= 1).
        Every number is what transformers' ROPE_INIT_FUNCTIONS[rope_type] computes for the same
        parameters (rope_theta = base, head_dim = d), in float32 as HF does:
        base ** (arange(0, d, 2).float() / d) and the other formulas in the module docstring.

    Raises:
        ValueError: if head_dim is odd or < 2 (< 4 for "dynamic"), base <= 0, scaling is
            neither None nor a dict, "rope_type" is unknown (the message lists the known
            ones), or a key that the type needs is missing or invalid (the message names
            it): "factor" must be a number >= 1, "original_max_position_embeddings" an int
            >= 1, "low_freq_factor" a number > 0 and "high_freq_factor" a number greater
            than it.
    """
    if not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2 != 0:
        raise ValueError(f"head_dim must be an even int >= 2 (it is cut into pairs), got {head_dim}")
    if base <= 0:
        raise ValueError(f"base must be > 0, got {base}")
    if scaling is None:
        scaling = {}
    if not isinstance(scaling, dict):
        raise ValueError(f"scaling must be None or a dict like HF's rope_parameters, got {type(scaling).__name__}")
    known = ("default", "linear", "dynamic", "yarn", "llama3")
    rope_type = scaling.get("rope_type", "default")
    if rope_type not in known:
        raise ValueError(f"unknown rope_type {rope_type!r}; the known ones are {', '.join(known)}")

    def number(key, above=None, at_least=None):
        """scaling[key], a real number (ValueError naming the key when missing or invalid)."""
        value = scaling.get(key)
        if value is None:
            raise ValueError(f'rope_type "{rope_type}" needs the key "{key}" in scaling')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (above is not None and not value > above) or (at_least is not None and not value >= at_least):
            bound = f" > {above}" if above is not None else f" >= {at_least}" if at_least is not None else ""
            raise ValueError(f'scaling["{key}"] must be a number{bound}, got {value!r}')
        return value

    def length():
        value = scaling.get("original_max_position_embeddings")
        if value is None:
            raise ValueError(f'rope_type "{rope_type}" needs the key "original_max_position_embeddings" in scaling')
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'scaling["original_max_position_embeddings"] must be an int >= 1, got {value!r}')
        return value

    d = head_dim
    two_i = torch.arange(0, d, 2, dtype=torch.int64, device="cuda").float()  # [d/2] = 0, 2, 4, ...
    if rope_type == "default":
        return 1.0 / (base ** (two_i / d)), 1.0

    factor = number("factor", at_least=1.0)
    if rope_type == "linear":
        # dividing every frequency by factor = dividing every position by factor
        return 1.0 / (base ** (two_i / d)) / factor, 1.0

    original = length()
    if rope_type == "dynamic":
        if d < 4:
            raise ValueError(f'rope_type "dynamic" needs head_dim >= 4 (its exponent is d / (d - 2)), got {d}')
        # below the trained length the model keeps its own frequencies (base' = base)
        seq_len = original if seq_len is None else max(seq_len, original)
        ntk_base = base * ((factor * seq_len / original) - (factor - 1)) ** (d / (d - 2))
        return 1.0 / (ntk_base ** (two_i / d)), 1.0

    if rope_type == "yarn":
        def temperature(mscale=1.0):  # YaRN's 0.1 * mscale * ln(factor) + 1 (HF yarn_get_mscale)
            return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0

        attention_factor = scaling.get("attention_factor")
        mscale, mscale_all_dim = scaling.get("mscale"), scaling.get("mscale_all_dim")
        if attention_factor is None:
            if mscale and mscale_all_dim:  # DeepSeek: a ratio of two temperatures
                attention_factor = temperature(mscale) / temperature(mscale_all_dim)
            else:
                attention_factor = temperature()
        beta_fast = scaling.get("beta_fast") or 32  # pairs turning > beta_fast times over L_orig: keep
        beta_slow = scaling.get("beta_slow") or 1  # pairs turning < beta_slow times: interpolate

        def correction_dim(rotations):  # the pair index that turns `rotations` times over L_orig
            return (d * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

        low, high = correction_dim(beta_fast), correction_dim(beta_slow)
        if scaling.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, d - 1)
        if low == high:
            high += 0.001  # no division by zero
        ramp = torch.clamp((torch.arange(d // 2, dtype=torch.float32) - low) / (high - low), 0, 1)  # [d/2]
        extrapolation = 1 - ramp.to(device)  # 1 where the pair keeps theta_i (fast pairs)
        pos_freqs = base ** (two_i / d)  # [d/2], 1 / theta_i
        inv_freq = 1.0 / (factor * pos_freqs) * (1 - extrapolation) + 1.0 / pos_freqs * extrapolation
        return inv_freq, float(attention_factor)

    # llama3: by wavelength, keep the fast pairs, divide the slow ones, blend in between
    low_freq_factor = number("low_freq_factor", above=0)
    high_freq_factor = number("high_freq_factor", above=low_freq_factor)
    inv_freq = 1.0 / (base ** (two_i / d))  # [d/2]
    low_freq_wavelen = original / low_freq_factor
    high_freq_wavelen = original / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama), 1.0


def scaled_rope_angles(positions, head_dim, base=10000.0, scaling=None):
    """cos and sin of every (position, pair) with scaled frequencies, times the attention factor.

    Args:
        positions: 1-D Tensor [L] of positions (integers, or floats), any device.
        head_dim: int d, as in rope_inv_freq.
        base: float > 0, as in rope_inv_freq.
        scaling: None or a dict, as in rope_inv_freq.

    Returns:
        (cos, sin), each a float32 Tensor [L, d // 2] on positions' device:
            angle[m, i] = positions[m] * inv_freq[i]     (positions.float() times float32 inv_freq)
            cos = cos(angle) * attention_factor, sin = sin(angle) * attention_factor
        with (inv_freq, attention_factor) = rope_inv_freq(d, base, scaling, seq_len) and, for
        "dynamic", seq_len = max(positions) + 1 (what HF's dynamic_rope_update passes on the
        first call of a fresh rotary module). These are HF's cos and sin
        (LlamaRotaryEmbedding.forward) before cat(freqs, freqs).

    Raises:
        ValueError: if positions is not 1-D, or as rope_inv_freq does.
    """
    positions = torch.as_tensor(positions)
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D [L], got shape {list(positions.shape)}")
    seq_len = int(positions.max()) + 1 if positions.numel() else None  # "dynamic" rescales by it
    inv_freq, attention_factor = rope_inv_freq(head_dim, base, scaling, seq_len=seq_len, device=positions.device)
    angle = positions.float()[:, None] * inv_freq[None, :]  # [L, d/2]
    return torch.cos(angle) * attention_factor, torch.sin(angle) * attention_factor
