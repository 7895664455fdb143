"""Independent correct flash, style 1 of 3: explicit loops over query then key blocks; XLNet reshape rel_shift returning a view.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch


def _check_flash_inputs(q, k, v, block_size):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be 4-D, got {q.dim()}, {k.dim()}, {v.dim()}")
    if k.shape[0] != v.shape[0] or k.shape[1] != v.shape[1] or k.shape[2] != v.shape[2]:
        raise ValueError(f"k {tuple(k.shape)} and v {tuple(v.shape)} differ in batch, heads or length")
    if q.shape[0] != k.shape[0] or q.shape[1] != k.shape[1] or q.shape[3] != k.shape[3]:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in batch, heads or d")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")


def online_softmax_update(m, l, acc, scores, v_block):
    dtype = acc.dtype
    scores = scores.to(dtype)
    # row max of this block; an empty block contributes nothing
    if scores.shape[-1] == 0:
        block_max = torch.full_like(m, float("-inf"), dtype=dtype)
    else:
        block_max = scores.max(dim=-1).values
    m_new = torch.maximum(m.to(dtype), block_max)
    # rows that have never seen an allowed key use 0 as their reference instead of -inf
    ref = torch.where(torch.isneginf(m_new), torch.zeros_like(m_new), m_new)
    p = torch.exp(scores - ref.unsqueeze(-1))
    alpha = torch.exp(m.to(dtype) - ref)
    l_new = alpha * l.to(dtype) + p.sum(dim=-1)
    acc_new = alpha.unsqueeze(-1) * acc + torch.matmul(p, v_block.to(dtype))
    return m_new, l_new, acc_new


def flash_attention(q, k, v, causal=False, block_size=64):
    _check_flash_inputs(q, k, v, block_size)
    B, H, Lq, d = q.shape
    Lk = k.shape[2]
    dv = v.shape[3]
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = 1.0 / math.sqrt(d)
    offset = Lk - Lq  # query i sits at position offset + i
    out = torch.zeros(B, H, Lq, dv, dtype=q.dtype, device=q.device)
    lse = torch.full((B, H, Lq), float("-inf"), dtype=torch.float32, device=q.device)
    for q_start in range(0, Lq, block_size):
        q_end = min(q_start + block_size, Lq)
        n_q = q_end - q_start
        q_blk = q[:, :, q_start:q_end, :].to(work)
        m = torch.full((B, H, n_q), float("-inf"), dtype=work, device=q.device)
        l = torch.zeros((B, H, n_q), dtype=work, device=q.device)
        acc = torch.zeros((B, H, n_q, dv), dtype=work, device=q.device)
        # last key position this query block can see
        last_visible = offset + q_end - 1 if causal else Lk - 1
        for k_start in range(0, Lk, block_size):
            if k_start > last_visible:
                break
            k_end = min(k_start + block_size, Lk)
            k_blk = k[:, :, k_start:k_end, :].to(work)
            v_blk = v[:, :, k_start:k_end, :].to(work)
            s = torch.matmul(q_blk, k_blk.transpose(-2, -1)) * scale
            if causal:
                q_pos = torch.arange(q_start, q_end, device=q.device) + offset
                k_pos = torch.arange(k_start, k_end, device=q.device)
                allowed = k_pos[None, :] <= q_pos[:, None]
                s = s.masked_fill(~allowed, float("-inf"))
            m, l, acc = online_softmax_update(m, l, acc, s, v_blk)
        safe_l = torch.where(l == 0, torch.ones_like(l), l)
        o = acc / safe_l.unsqueeze(-1)
        o = torch.where((l == 0).unsqueeze(-1), torch.zeros_like(o), o)
        out[:, :, q_start:q_end, :] = o.to(q.dtype)
        row_lse = torch.where(l == 0, torch.full_like(l, float("-inf")), m + torch.log(safe_l))
        lse[:, :, q_start:q_end] = row_lse.to(torch.float32)
    return out, lse
