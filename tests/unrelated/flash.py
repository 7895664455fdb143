"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of the exercise flash with the errors the spec asks for, but every value is noise
(m, l, acc of the right shapes; out in q's dtype, lse float32), so a value case fails and the
grader must not pretend to know why. It holds nothing large, so it is not slow or big.
"""

import torch


def online_softmax_update(m, l, acc, scores, v_block):
    return torch.randn_like(m), torch.rand_like(l) + 0.5, torch.randn_like(acc)


def flash_attention(q, k, v, causal=False, block_size=64):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D")
    if k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError("shapes do not match")
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    B, H, Lq, _ = q.shape
    out = torch.randn(B, H, Lq, v.shape[-1], device=q.device).to(q.dtype)
    return out, torch.randn(B, H, Lq, device=q.device)
