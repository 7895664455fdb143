"""Independent correct xl, style 1 of 3: explicit loops over query then key blocks; XLNet reshape rel_shift returning a view.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def _shape_str(t):
    return "x".join(str(s) for s in t.shape)


def xl_positional_embedding(pos_seq, inv_freq):
    if pos_seq.dim() != 1:
        raise ValueError(f"pos_seq must be 1-D, got shape {tuple(pos_seq.shape)}")
    if inv_freq.dim() != 1:
        raise ValueError(f"inv_freq must be 1-D, got shape {tuple(inv_freq.shape)}")
    if not inv_freq.is_floating_point():
        raise ValueError(f"inv_freq must be a float tensor, got {inv_freq.dtype}")
    angle = pos_seq[:, None] * inv_freq[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)


def rel_shift(x, klen):
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dims, got {x.dim()}")
    if not isinstance(klen, int) or isinstance(klen, bool) or klen < 0:
        raise ValueError(f"klen must be an int >= 0, got {klen!r}")
    qlen = x.shape[-2]
    if x.shape[-1] != klen + qlen:
        raise ValueError(f"x's last dim must be klen + qlen = {klen + qlen}, got {x.shape[-1]}")
    lead = x.shape[:-2]
    if qlen == 0 or klen == 0:
        return x.new_empty(*lead, qlen, klen)
    # XLNet's rel_shift_bnij: reinterpret, drop the first row, reinterpret, keep klen columns
    y = x.reshape(*lead, klen + qlen, qlen)
    y = y[..., 1:, :]
    y = y.reshape(*lead, qlen, klen + qlen - 1)
    return y[..., :klen]


def xl_relative_attention(q, k, v, r, r_w_bias, r_r_bias, mask=None):
    d = q.shape[-1]
    if k.shape[-1] != d or r.shape[-1] != d or r_w_bias.shape[-1] != d or r_r_bias.shape[-1] != d:
        raise ValueError("q, k, r and the biases must share the width d")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k has {k.shape[-2]} keys but v has {v.shape[-2]}")
    Lq = q.shape[-2]
    Lk = k.shape[-2]
    if r.shape[-2] != Lk + Lq:
        raise ValueError(f"r must have Lk + Lq = {Lk + Lq} rows, got {r.shape[-2]}")
    H = q.shape[-3]
    for name, b in (("r_w_bias", r_w_bias), ("r_r_bias", r_r_bias)):
        if b.dim() != 2 or b.shape[0] != H or b.shape[1] != d:
            raise ValueError(f"{name} must be [H, d] = [{H}, {d}], got {tuple(b.shape)}")
    if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool):
        raise TypeError("mask must be a bool tensor")

    ac = torch.matmul(q + r_w_bias[:, None, :], k.transpose(-2, -1))
    bd_full = torch.matmul(q + r_r_bias[:, None, :], r.transpose(-2, -1))
    bd = rel_shift(bd_full, Lk)
    logits = ac + bd  # in q's dtype
    if mask is not None:
        try:
            shape = torch.broadcast_shapes(mask.shape, logits.shape)
        except RuntimeError as e:
            raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to {tuple(logits.shape)}") from e
        if tuple(shape) != tuple(logits.shape):
            raise ValueError(f"mask {tuple(mask.shape)} does not broadcast to {tuple(logits.shape)}")
    work = torch.float32 if q.dtype in (torch.float16, torch.bfloat16) else q.dtype
    logits = logits.to(work) / math.sqrt(d)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)
    weights = weights.to(q.dtype)
    out = torch.matmul(weights, v)
    return out, weights
