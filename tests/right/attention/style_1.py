"""Independent correct attention, style 1: compact: exp2/bit_length slopes; fused F.linear over q/k/v weights, einsum, finfo.min masks, hand-made dropout.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .alibi import alibi_bias
from .learned import LearnedPositionalEmbedding
from .relative import RelativePositionEmbedding, relative_attention
from .rope import apply_rope
from .sinusoidal import SinusoidalPositionalEncoding

POSITIONS = ("none", "sinusoidal", "learned", "relative", "rope", "alibi")


def scaled_dot_product_attention(q, k, v, mask=None, bias=None, dropout_p=0.0):
    if mask is not None and mask.dtype is not torch.bool:
        raise TypeError(f"mask must be torch.bool, got {mask.dtype}")
    if not 0 <= dropout_p < 1:
        raise ValueError("dropout_p out of range")
    acc = torch.promote_types(q.dtype, torch.float32)
    logits = torch.einsum("...qd,...kd->...qk", q, k).to(acc) * (q.shape[-1] ** -0.5)
    if bias is not None:
        logits = logits + bias.to(logits)
    keep = logits != float("-inf")
    if mask is not None:
        keep = keep & mask.to(logits.device)
    logits = logits.masked_fill(~keep, torch.finfo(acc).min)
    w = logits.softmax(-1) * keep.any(-1, keepdim=True)
    w = w.masked_fill(~keep, 0.0).to(q.dtype)
    if dropout_p:
        w = w * (torch.rand_like(w, dtype=torch.float32) >= dropout_p).to(w.dtype) / (1 - dropout_p)
    return torch.einsum("...qk,...kd->...qd", w, v), w


def causal_mask(len_q, len_k, device=None):
    if min(len_q, len_k) < 0:
        raise ValueError("negative length")
    return torch.ones(len_q, len_k, dtype=torch.bool, device=device).tril(len_k - len_q)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, position="none", max_len=2048, max_distance=16,
                 rope_base=10000.0, dropout=0.0):
        super().__init__()
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        if d_model % n_heads:
            raise ValueError("n_heads must divide d_model")
        if not 0 <= dropout < 1 or (dropout and position == "relative"):
            raise ValueError("bad dropout")
        self.h, self.d = n_heads, d_model // n_heads
        self.position, self.rope_base, self.dropout = position, rope_base, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        if position == "sinusoidal":
            self.pos = SinusoidalPositionalEncoding(d_model, max_len)
        elif position == "learned":
            self.pos = LearnedPositionalEmbedding(max_len, d_model)
        elif position == "relative":
            self.rel_k = RelativePositionEmbedding(self.d, max_distance)
            self.rel_v = RelativePositionEmbedding(self.d, max_distance)

    def forward(self, x, mask=None, causal=False):
        B, L, D = x.shape
        if self.position in ("sinusoidal", "learned"):
            x = self.pos(x)
        w = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
        b = torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
        q, k, v = F.linear(x, w, b).unflatten(-1, (3, self.h, self.d)).permute(2, 0, 3, 1, 4)
        if causal:
            c = causal_mask(L, L, x.device)
            mask = c if mask is None else torch.logical_and(mask.to(x.device), c)
        if self.position == "rope":
            q, k = (apply_rope(t, base=self.rope_base) for t in (q, k))
        if self.position == "relative":
            o, _ = relative_attention(q, k, v, self.rel_k(L, L).to(q.dtype), self.rel_v(L, L).to(q.dtype), mask)
        else:
            bias = alibi_bias(self.h, L, L, x.device) if self.position == "alibi" else None
            o, _ = scaled_dot_product_attention(q, k, v, mask, bias, self.dropout if self.training else 0.0)
        return self.out_proj(o.transpose(1, 2).reshape(B, L, D))
