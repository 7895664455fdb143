"""Independent correct flash, style 2 of 3: vectorised state for all queries, keys outer; rel_shift by torch.gather.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch

_NEG_INF = float("-inf")


def online_softmax_update(m, l, acc, scores, v_block):
    ft = acc.dtype
    s = scores.to(ft)
    m_old = m.to(ft)
    m_new = torch.maximum(m_old, s.amax(dim=-1)) if s.shape[-1] else m_old.clone()
    # clamp -inf to the most negative finite value: exp(-inf - finite) = 0, and exp(finite - finite) is unchanged
    m_ref = m_new.clamp(min=torch.finfo(ft).min)
    p = (s - m_ref[..., None]).exp()
    scale_old = (m_old - m_ref).exp()
    l_new = scale_old * l.to(ft) + p.sum(-1)
    acc_new = scale_old[..., None] * acc + torch.einsum("...qk,...kd->...qd", p, v_block.to(ft))
    return m_new, l_new, acc_new


def flash_attention(q, k, v, causal=False, block_size=64):
    if not (q.ndim == k.ndim == v.ndim == 4):
        raise ValueError("q, k and v must all be 4-D [B, H, L, d]")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"k and v must agree in batch, heads and length: {tuple(k.shape)} vs {tuple(v.shape)}")
    if q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must agree in batch, heads and d: {tuple(q.shape)} vs {tuple(k.shape)}")
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    B, H, Lq, d = q.shape
    Lk, dv = k.shape[2], v.shape[3]
    ft = torch.float64 if q.dtype == torch.float64 else torch.float32
    dev = q.device
    shift = Lk - Lq
    q_starts = list(range(0, Lq, block_size))
    # running state for every query, key blocks in the outer loop
    m = torch.full((B, H, Lq), _NEG_INF, dtype=ft, device=dev)
    l = torch.zeros((B, H, Lq), dtype=ft, device=dev)
    acc = torch.zeros((B, H, Lq, dv), dtype=ft, device=dev)
    for ks in range(0, Lk, block_size):
        ke = min(ks + block_size, Lk)
        kb = k[:, :, ks:ke].to(ft)
        vb = v[:, :, ks:ke].to(ft)
        kpos = torch.arange(ks, ke, device=dev)
        for qs in q_starts:
            qe = min(qs + block_size, Lq)
            if causal and qe - 1 + shift < ks:
                continue  # no query of this block sees any key of this block
            qb = q[:, :, qs:qe].to(ft) * (1.0 / math.sqrt(d))
            s = qb @ kb.transpose(-1, -2)
            if causal:
                qpos = torch.arange(qs, qe, device=dev) + shift
                s = torch.where(kpos.unsqueeze(0) > qpos.unsqueeze(1), _NEG_INF, s)
            m[:, :, qs:qe], l[:, :, qs:qe], acc[:, :, qs:qe] = online_softmax_update(
                m[:, :, qs:qe], l[:, :, qs:qe], acc[:, :, qs:qe], s, vb)
    out = acc / l.clamp_min(torch.finfo(ft).tiny)[..., None]  # l = 0 rows have acc = 0 -> out = 0
    lse = m + torch.log(l)  # l = 0 -> m = -inf, log 0 = -inf -> -inf
    return out.to(q.dtype), lse.float()
