"""Independent correct rope_scaling, style 3 of 3: compact blog style: key tables, index-gather repeat_kv, finfo.min masks, rope.apply_rope.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def rope_inv_freq(head_dim, base=10000.0, scaling=None, seq_len=None, device=None):
    if not isinstance(head_dim, int) or head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be even and >= 2, got {head_dim}")
    if not base > 0:
        raise ValueError(f"base must be > 0, got {base}")
    if scaling is not None and not isinstance(scaling, dict):
        raise ValueError(f"scaling must be None or a dict, got {scaling!r}")
    p = scaling or {}
    get = lambda key, default=None: default if p.get(key) is None else p[key]
    rtype = get("rope_type", "default")
    if rtype not in _REQUIRED:
        raise ValueError(f"unknown rope_type {rtype!r}, expected one of {sorted(_REQUIRED)}")
    for key in _REQUIRED[rtype]:
        val = p.get(key)
        if val is None:
            raise ValueError(f"rope_type {rtype!r} requires {key!r}")
        if not _CHECKS[key](val, p):
            raise ValueError(f"invalid {key!r}: {val!r}")
    if rtype == "dynamic" and head_dim < 4:
        raise ValueError("'dynamic' needs head_dim >= 4")

    d = head_dim
    x = torch.arange(0, d, 2, device=device).float() / d
    theta = 1.0 / (base ** x)
    if rtype == "default":
        return theta, 1.0
    factor = p["factor"]
    if rtype == "linear":
        return theta / factor, 1.0
    L0 = p["original_max_position_embeddings"]
    if rtype == "dynamic":
        n = max(L0 if seq_len is None else seq_len, L0)
        return 1.0 / ((base * (factor * n / L0 - factor + 1) ** (d / (d - 2))) ** x), 1.0
    if rtype == "yarn":
        corr = lambda r: d * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(base))
        lo, hi = corr(get("beta_fast", 32) or 32), corr(get("beta_slow", 1) or 1)
        if get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, d - 1)
        hi = hi + 0.001 if lo == hi else hi
        ramp = ((torch.arange(d // 2, dtype=torch.float32) - lo) / (hi - lo)).clamp(0, 1).to(theta.device)
        keep = 1 - ramp
        inv = (theta / factor) * (1 - keep) + theta * keep
        mscale = lambda m: 1.0 if factor <= 1 else 0.1 * m * math.log(factor) + 1.0
        if p.get("attention_factor") is not None:
            att = float(p["attention_factor"])
        elif p.get("mscale") and p.get("mscale_all_dim"):
            att = float(mscale(p["mscale"]) / mscale(p["mscale_all_dim"]))
        else:
            att = mscale(1.0)
        return inv, att
    # llama3
    lf, hf = p["low_freq_factor"], p["high_freq_factor"]
    wl = 2 * math.pi / theta
    s = (L0 / wl - lf) / (hf - lf)
    inv = torch.where(wl > L0 / lf, theta / factor, theta)
    inv = torch.where((wl >= L0 / hf) & (wl <= L0 / lf), (1 - s) * inv / factor + s * inv, inv)
    return inv, 1.0


def scaled_rope_angles(positions, head_dim, base=10000.0, scaling=None):
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D, got {positions.dim()}-D")
    seq_len = None
    if (scaling or {}).get("rope_type") == "dynamic" and len(positions):
        seq_len = int(positions.max()) + 1 if not positions.is_floating_point() else float(positions.max()) + 1
    inv_freq, att = rope_inv_freq(head_dim, base, scaling, seq_len, device=positions.device)
    angles = torch.einsum("m,i->mi", positions.float(), inv_freq)
    return angles.cos() * att, angles.sin() * att


_num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
_CHECKS = {
    "factor": lambda v, p: _num(v) and v >= 1,
    "original_max_position_embeddings": lambda v, p: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
    "low_freq_factor": lambda v, p: _num(v) and v > 0,
    "high_freq_factor": lambda v, p: _num(v) and _num(p.get("low_freq_factor")) and v > p["low_freq_factor"],
}
_REQUIRED = {
    "default": [],
    "linear": ["factor"],
    "dynamic": ["factor", "original_max_position_embeddings"],
    "yarn": ["factor", "original_max_position_embeddings"],
    "llama3": ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"],
}
