"""Independent correct xl, style 2 of 3: vectorised state for all queries, keys outer; rel_shift by torch.gather.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def xl_positional_embedding(pos_seq, inv_freq):
    if pos_seq.ndim != 1 or inv_freq.ndim != 1:
        raise ValueError("pos_seq and inv_freq must both be 1-D")
    if not torch.is_floating_point(inv_freq):
        raise ValueError("inv_freq must be floating point")
    sinusoid = torch.outer(pos_seq, inv_freq)
    return torch.cat((sinusoid.sin(), sinusoid.cos()), dim=-1)


def rel_shift(x, klen):
    if x.ndim < 2:
        raise ValueError("x needs at least 2 dims [..., qlen, klen + qlen]")
    if klen < 0:
        raise ValueError("klen must be >= 0")
    qlen, width = x.shape[-2], x.shape[-1]
    if width != klen + qlen:
        raise ValueError(f"x has {width} columns, expected klen + qlen = {klen + qlen}")
    i = torch.arange(qlen, device=x.device).unsqueeze(-1)
    j = torch.arange(klen, device=x.device).unsqueeze(0)
    index = (j + qlen - i).expand(*x.shape[:-2], qlen, klen)
    return torch.gather(x, -1, index)


def xl_relative_attention(q, k, v, r, r_w_bias, r_r_bias, mask=None):
    d = q.shape[-1]
    Lq, Lk = q.shape[-2], k.shape[-2]
    H = q.shape[-3]
    if not (k.shape[-1] == r.shape[-1] == d):
        raise ValueError("q, k and r must have the same width d")
    if v.shape[-2] != Lk:
        raise ValueError("k and v must have the same length")
    if r.shape[-2] != Lk + Lq:
        raise ValueError(f"r must have Lk + Lq = {Lk + Lq} rows")
    if tuple(r_w_bias.shape) != (H, d) or tuple(r_r_bias.shape) != (H, d):
        raise ValueError(f"r_w_bias and r_r_bias must be [H, d] = [{H}, {d}]")
    if mask is not None and mask.dtype != torch.bool:
        raise TypeError(f"mask must be bool, got {mask.dtype}")
    content = torch.einsum("...hid,...hjd->...hij", q + r_w_bias.unsqueeze(-2), k)
    position = torch.einsum("...hid,...hcd->...hic", q + r_r_bias.unsqueeze(-2), r)
    position = rel_shift(position, Lk)
    half = q.dtype in (torch.float16, torch.bfloat16)
    ct = torch.float32 if half else q.dtype
    scores = (content.to(ct) + position.to(ct)) * (d ** -0.5)
    if mask is not None:
        try:
            mask = mask.expand(scores.shape)
        except RuntimeError as err:
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(scores.shape)}") from err
        scores = torch.where(mask, scores, torch.tensor(float("-inf"), dtype=ct, device=scores.device))
    row_max = scores.amax(dim=-1, keepdim=True)
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    e = torch.exp(scores - row_max)
    denom = e.sum(dim=-1, keepdim=True)
    probs = e / torch.where(denom > 0, denom, torch.ones_like(denom))
    out = (probs @ v.to(ct)).to(q.dtype)
    return out, probs.to(q.dtype)
