"""Mistake: torch's own attention does the work (F.scaled_dot_product_attention with a bottom-right mask)
Caught by: test_torch_attention_not_used
Names: uses_torch_sdpa, full_logits

The values are right; the lse comes from an explicit logsumexp over the full logits (so the
memory case rightly names full_logits too). The point of the exercise is to
write the tiles and the online softmax.
"""

import math

import torch
import torch.nn.functional as F


def online_softmax_update(m, l, acc, scores, v_block):
    m_new = torch.maximum(m, scores.amax(dim=-1))
    m_safe = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    alpha = torch.exp(m - m_safe)
    p = torch.exp(scores - m_safe.unsqueeze(-1))
    return m_new, alpha * l + p.sum(-1), alpha.unsqueeze(-1) * acc + p @ v_block.to(acc.dtype)


def flash_attention(q, k, v, causal=False, block_size=64):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D")
    if k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError("shapes do not match")
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    work = torch.promote_types(q.dtype, torch.float32)
    Lq, Lk = q.shape[-2], k.shape[-2]
    mask = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device)
    if causal:
        mask = mask.tril(Lk - Lq)
    qf, kf, vf = q.to(work), k.to(work), v.to(work)
    out = F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask)
    logits = (qf @ kf.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(logits, dim=-1)
    out = torch.where(torch.isneginf(lse).unsqueeze(-1), torch.zeros_like(out), out)
    return out.to(q.dtype), lse.float()
