"""Mistake: plain attention: the whole [B, H, Lq, Lk] logits are built and softmaxed (right values, O(L²) memory)
Caught by: test_memory

A learner's shortcut: every value is right (causal bottom-right, rows with no key give 0 and
-inf, float32 accumulation), so only the memory measured at 4096 tokens shows it.
"""

import math

import torch


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
    logits = q.to(work) @ k.to(work).transpose(-2, -1) / math.sqrt(q.shape[-1])  # [B, H, Lq, Lk]
    if causal:
        allowed = torch.ones(Lq, Lk, dtype=torch.bool, device=q.device).tril(Lk - Lq)
        logits = logits.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(logits, dim=-1)  # -inf for a row with no key
    weights = torch.exp(logits - lse.unsqueeze(-1)).nan_to_num(0.0)
    return (weights @ v.to(work)).to(q.dtype), lse.float()
