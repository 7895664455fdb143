"""Independent correct flash, style 3 of 3: compact: nan_to_num online softmax, additive -inf tiles; rel_shift by as_strided.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def online_softmax_update(m, l, acc, scores, v_block):
    m_new = torch.max(m, scores.max(-1).values)
    alpha = torch.exp(m - m_new).nan_to_num(0.0)            # -inf - -inf = nan -> 0 (l, acc are 0 there anyway)
    p = torch.exp(scores - m_new[..., None]).nan_to_num(0.0)
    return m_new, alpha * l + p.sum(-1), alpha[..., None] * acc + p @ v_block.to(acc.dtype)


def flash_attention(q, k, v, causal=False, block_size=64):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4: raise ValueError("q, k, v must be 4-D")
    if k.shape[:-1] != v.shape[:-1]: raise ValueError("k and v differ in batch, heads or length")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]: raise ValueError("q and k differ in batch, heads or d")
    if block_size < 1: raise ValueError("block_size < 1")
    (B, H, Lq, d), Lk = q.shape, k.shape[2]
    dt = torch.float64 if q.dtype == torch.float64 else torch.float32
    outs, lses = [], []
    for i in range(0, Lq, block_size):
        qi = q[:, :, i:i + block_size].to(dt)
        n = qi.shape[2]
        m = qi.new_full((B, H, n), float("-inf")); l = qi.new_zeros(B, H, n); acc = qi.new_zeros(B, H, n, v.shape[-1])
        for j in range(0, Lk, block_size):
            kj, vj = k[:, :, j:j + block_size].to(dt), v[:, :, j:j + block_size].to(dt)
            s = qi @ kj.transpose(2, 3) / math.sqrt(d)
            if causal:  # key j' visible from query i' iff j' - i' <= Lk - Lq
                keep = torch.ones(n, kj.shape[2], dtype=torch.bool, device=q.device).tril(Lk - Lq + i - j)
                s = s + torch.zeros_like(keep, dtype=dt).masked_fill(~keep, float("-inf"))
            m, l, acc = online_softmax_update(m, l, acc, s, vj)
        outs.append((acc / l[..., None]).nan_to_num(0.0).to(q.dtype))
        lses.append((m + l.log()).float())
    if not outs:  # Lq == 0
        return q.new_zeros(B, H, 0, v.shape[-1]), torch.zeros(B, H, 0, device=q.device)
    return torch.cat(outs, 2), torch.cat(lses, 2)
