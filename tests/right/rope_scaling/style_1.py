"""Independent correct rope_scaling, style 1 of 3: explicit: Python loops over pairs/heads/rows, list cache + cat.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def rope_inv_freq(head_dim, base=10000.0, scaling=None, seq_len=None, device=None):
    # ---- validate the plain arguments ----
    if isinstance(head_dim, bool) or not isinstance(head_dim, int):
        raise ValueError(f"head_dim must be an int, got {head_dim!r}")
    if head_dim < 2 or head_dim % 2 != 0:
        raise ValueError(f"head_dim must be even and >= 2, got {head_dim}")
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
        raise ValueError(f"base must be a number > 0, got {base!r}")
    if scaling is not None and not isinstance(scaling, dict):
        raise ValueError(f"scaling must be None or a dict, got {type(scaling).__name__}")

    params = {} if scaling is None else scaling
    rope_type = params.get("rope_type")
    if rope_type is None:
        rope_type = "default"
    known = ["default", "linear", "dynamic", "yarn", "llama3"]
    if rope_type not in known:
        raise ValueError(f"unknown rope_type {rope_type!r}; known rope types: {', '.join(known)}")

    # ---- the default frequencies, exactly as HF writes them ----
    exps = torch.arange(0, head_dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float32) / head_dim
    default_inv = 1.0 / (base ** exps)
    n_pairs = head_dim // 2

    if rope_type == "default":
        return default_inv, 1.0

    factor = _v1_factor(params)

    if rope_type == "linear":
        out = default_inv.clone()
        for i in range(n_pairs):
            out[i] = default_inv[i] / factor
        return out, 1.0

    L_orig = _v1_orig_len(params)

    if rope_type == "dynamic":
        if head_dim < 4:
            raise ValueError(f"head_dim must be >= 4 for dynamic scaling, got {head_dim}")
        n = L_orig if seq_len is None else seq_len
        if n <= L_orig:
            n = L_orig
        new_base = base * ((factor * n / L_orig) - (factor - 1)) ** (head_dim / (head_dim - 2))
        return 1.0 / (new_base ** exps), 1.0

    if rope_type == "yarn":
        beta_fast = params.get("beta_fast") or 32
        beta_slow = params.get("beta_slow") or 1
        truncate = params.get("truncate")
        if truncate is None:
            truncate = True

        def corr_dim(rotations):
            return head_dim * math.log(L_orig / (2 * math.pi * rotations)) / (2 * math.log(base))

        low = corr_dim(beta_fast)
        high = corr_dim(beta_slow)
        if truncate:
            low = math.floor(low)
            high = math.ceil(high)
        low = max(low, 0)
        high = min(high, head_dim - 1)
        if low == high:
            high = high + 0.001

        # per pair, with the same float32 ramp that HF uses
        pos_freqs = base ** exps
        out = torch.empty(n_pairs, dtype=torch.float32, device=device)
        for i in range(n_pairs):
            ramp = (torch.tensor(float(i), dtype=torch.float32) - low) / (high - low)
            ramp = min(max(ramp.item(), 0.0), 1.0)
            extra_w = torch.tensor(1.0 - ramp, dtype=torch.float32)   # weight of the kept theta
            interp = 1.0 / (factor * pos_freqs[i])
            extrap = 1.0 / pos_freqs[i]
            out[i] = interp * (1 - extra_w) + extrap * extra_w

        att = params.get("attention_factor")
        if att is None:
            mscale = params.get("mscale")
            mscale_all = params.get("mscale_all_dim")

            def get_mscale(scale, m=1.0):
                if scale <= 1:
                    return 1.0
                return 0.1 * m * math.log(scale) + 1.0

            if mscale and mscale_all:
                att = get_mscale(factor, mscale) / get_mscale(factor, mscale_all)
            else:
                att = get_mscale(factor)
        return out, float(att)

    # llama3
    low_ff = params.get("low_freq_factor")
    high_ff = params.get("high_freq_factor")
    if low_ff is None:
        raise ValueError("llama3 scaling needs 'low_freq_factor'")
    if isinstance(low_ff, bool) or not isinstance(low_ff, (int, float)) or not low_ff > 0:
        raise ValueError(f"'low_freq_factor' must be a number > 0, got {low_ff!r}")
    if high_ff is None:
        raise ValueError("llama3 scaling needs 'high_freq_factor'")
    if isinstance(high_ff, bool) or not isinstance(high_ff, (int, float)) or not high_ff > low_ff:
        raise ValueError(f"'high_freq_factor' must be a number greater than low_freq_factor, got {high_ff!r}")
    low_wavelen = L_orig / low_ff
    high_wavelen = L_orig / high_ff
    wavelens = 2 * math.pi / default_inv
    out = default_inv.clone()
    for i in range(n_pairs):
        wl = wavelens[i]
        f = default_inv[i]
        if wl < high_wavelen:
            out[i] = f
        elif wl > low_wavelen:
            out[i] = f / factor
        else:
            s = (L_orig / wl - low_ff) / (high_ff - low_ff)
            out[i] = (1 - s) * f / factor + s * f
    return out, 1.0


def scaled_rope_angles(positions, head_dim, base=10000.0, scaling=None):
    if not isinstance(positions, torch.Tensor) or positions.dim() != 1:
        raise ValueError("positions must be a 1-D tensor")
    dev = positions.device
    seq_len = None
    if isinstance(scaling, dict) and scaling.get("rope_type") == "dynamic" and positions.numel() > 0:
        seq_len = positions.max().item() + 1
    inv_freq, att = rope_inv_freq(head_dim, base, scaling, seq_len=seq_len, device=dev)
    pos = positions.float()
    L, P = pos.shape[0], inv_freq.shape[0]
    angle = torch.empty(L, P, dtype=torch.float32, device=dev)
    for i in range(P):
        angle[:, i] = pos * inv_freq[i]
    cos = torch.cos(angle) * att
    sin = torch.sin(angle) * att
    return cos, sin


def _v1_is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _v1_factor(params):
    f = params.get("factor")
    if f is None:
        raise ValueError("this rope_type needs the key 'factor'")
    if not _v1_is_number(f) or not f >= 1:
        raise ValueError(f"'factor' must be a number >= 1, got {f!r}")
    return f


def _v1_orig_len(params):
    n = params.get("original_max_position_embeddings")
    if n is None:
        raise ValueError("this rope_type needs the key 'original_max_position_embeddings'")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"'original_max_position_embeddings' must be an int >= 1, got {n!r}")
    return n
