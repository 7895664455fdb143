"""Independent correct xl, style 3 of 3: compact: nan_to_num online softmax, additive -inf tiles; rel_shift by as_strided.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def xl_positional_embedding(pos_seq, inv_freq):
    if pos_seq.dim() != 1 or inv_freq.dim() != 1 or not inv_freq.dtype.is_floating_point:
        raise ValueError("need 1-D pos_seq and 1-D float inv_freq")
    dt = torch.result_type(pos_seq, inv_freq)
    ang = torch.einsum("i,j->ij", pos_seq.to(dt), inv_freq.to(dt))
    return torch.cat([ang.sin(), ang.cos()], -1)


def rel_shift(x, klen):
    if x.dim() < 2 or klen < 0 or x.shape[-1] != klen + x.shape[-2]:
        raise ValueError(f"rel_shift: bad x {tuple(x.shape)} / klen {klen}")
    *lead, qlen, c = x.shape
    x = x.contiguous()
    # row i starts at element qlen - i of its own row: stride c - 1 between rows, offset qlen
    strides = list(x.stride()[:-2]) + [c - 1, 1]
    return x.as_strided((*lead, qlen, klen), strides, x.storage_offset() + qlen).clone()


def xl_relative_attention(q, k, v, r, r_w_bias, r_r_bias, mask=None):
    d, (Lq, Lk) = q.shape[-1], (q.shape[-2], k.shape[-2])
    if len({d, k.shape[-1], r.shape[-1], r_w_bias.shape[-1], r_r_bias.shape[-1]}) != 1:
        raise ValueError("width mismatch")
    if k.shape[-2] != v.shape[-2]: raise ValueError("k/v length mismatch")
    if r.shape[-2] != Lk + Lq: raise ValueError("r must have Lk + Lq rows")
    if r_w_bias.shape != (q.shape[-3], d) or r_r_bias.shape != (q.shape[-3], d): raise ValueError("bias must be [H, d]")
    if mask is not None and (not torch.is_tensor(mask) or mask.dtype is not torch.bool): raise TypeError("mask must be bool")
    AC = (q + r_w_bias[:, None]) @ k.transpose(-1, -2)
    BD = rel_shift((q + r_r_bias[:, None]) @ r.transpose(-1, -2), Lk)
    logits = AC + BD
    if mask is not None and torch.broadcast_shapes(mask.shape, logits.shape) != logits.shape:
        raise ValueError("mask does not broadcast to the logits")
    logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    logits = logits / math.sqrt(d)
    if mask is not None:
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    w = logits.softmax(-1)
    if mask is not None:
        w = w * mask  # rows with no allowed key were uniform: now all zero
    w = w.to(q.dtype)
    return w @ v, w
