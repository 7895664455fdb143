"""attention — scaled dot-product attention and a multi-head layer with pluggable positions.

Each query scores every key, the scores become a probability distribution over the keys,
and the query's output is that average of the values (Vaswani et al. 2017):

    Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d) + bias, over keys, where mask allows) V

Masks here are bool with True = may attend. A decoder uses a causal mask. With a KV cache
the Lq new queries are the LAST Lq of the Lk positions, so query i sits at position
len_k - len_q + i and sees keys j <= len_k - len_q + i: the mask is aligned bottom-right.
Worked example, causal_mask(2, 4) (queries at positions 2 and 3):

    [[True, True, True, False],
     [True, True, True, True ]]

MultiHeadAttention splits D into H heads of width d = D / H (head h owns channels
h*d .. (h+1)*d - 1), attends in each head, merges the heads back and projects. It composes
your earlier exercises through relative imports (`from .rope import apply_rope`, ...): the
grader loads your workspace as a package, so they find your own files beside this one.
Those exercises must work first:
    "sinusoidal"  adds SinusoidalPositionalEncoding (the sinusoidal exercise) to x before the projections
    "learned"     adds LearnedPositionalEmbedding (the learned exercise) to x before the projections
    "relative"    relative_attention with RelativePositionEmbedding tables (the relative exercise)
    "rope"        apply_rope (the rope exercise, interleaved pairs) on q and k after the head split
    "alibi"       adds alibi_bias (the alibi exercise) to the scaled logits
    "none"        no positions at all

torch facts you will meet (and why this exercise does not use torch's own attention):
  * F.scaled_dot_product_attention(..., is_causal=True) builds tril(ones(Lq, Lk)): it is
    aligned top-left, which is wrong for a KV cache when Lq < Lk (for Lq = 1 it keeps only
    the first key). torch.nn.attention.bias.causal_lower_right is the bottom-right one.
  * nn.MultiheadAttention's bool masks (attn_mask, key_padding_mask) mean True = IGNORE,
    the opposite of this kit and of F.scaled_dot_product_attention.
  * F.dropout(x, p) and the dropout_p of functional attention drop even when the module is
    in eval(): a module must pass p only when self.training.
  * Filling masked logits with -inf and calling softmax gives NaN for a row in which every
    key is masked (exp(-inf - (-inf))). Here such a row must give zero weights and zero output.
"""

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
    """Attention of each query over the keys, with an optional mask and additive bias.

    Args:
        q: float Tensor [..., Lq, d].
        k: float Tensor [..., Lk, d], same dtype as q; leading dims broadcast with q's.
        v: float Tensor [..., Lk, dv], same dtype as q.
        mask: None or bool Tensor broadcastable to [..., Lq, Lk]; True = may attend.
        bias: None or float Tensor broadcastable to [..., Lq, Lk], added to the logits after
            the 1/sqrt(d) scaling and not scaled itself (ALiBi, T5); -inf entries act as a mask.
        dropout_p: float in [0, 1); when > 0, dropout is applied to the weights (always: the
            caller decides whether it is training).

    Returns:
        (out, weights): out [..., Lq, dv] and weights [..., Lq, Lk], both in q's dtype and
        on q's device, with
        weights = softmax_j(q·kᵀ / sqrt(d) + bias, masked entries excluded), out = weights·v.
        For float16/bfloat16 inputs q·kᵀ is taken in the input dtype, then the scaling, bias
        and softmax run in float32 and the weights are cast back before multiplying v. A query
        row with no allowed key gets all-zero weights and out = 0, never NaN (as torch 2.13's
        own SDPA). With dropout_p > 0 the returned weights are the ones after dropout, the
        ones that multiplied v.

    Raises:
        TypeError: if mask is not a bool tensor (pass additive float masks as bias).
        ValueError: if dropout_p is not in [0, 1).
    """
    raise NotImplementedError


def causal_mask(len_q, len_k, device=None):
    """The bottom-right aligned causal mask (queries are the last Lq of Lk positions).

    Args:
        len_q: int Lq >= 0, the number of queries.
        len_k: int Lk >= 0, the number of keys. len_q > len_k is allowed: the first
            len_q - len_k queries then sit before every key and get all-False rows (as
            torch.nn.attention.bias.causal_lower_right).
        device: where to create the result (None = the CPU).

    Returns:
        bool Tensor [Lq, Lk] with mask[i, j] = j <= len_k - len_q + i
        (= torch.tril(ones(Lq, Lk), diagonal=Lk - Lq); NOT tril(ones(Lq, Lk)) unless Lq == Lk).

    Raises:
        ValueError: if len_q or len_k is negative.
    """
    raise NotImplementedError


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with a choice of position encoding.

    Args:
        d_model: int D >= 1, the model width.
        n_heads: int H >= 1 dividing D; each head has width d = D / H.
        position: one of "none", "sinusoidal", "learned", "relative", "rope", "alibi".
        max_len: int, the longest sequence for "sinusoidal" and "learned".
        max_distance: int K, the clipping distance for "relative".
        rope_base: float, the RoPE base for "rope" (interleaved pairs).
        dropout: float in [0, 1), dropout on the attention weights, in training mode only.

    Submodules (their state_dict keys are fixed; the grader loads weights by these names):
        q_proj, k_proj, v_proj, out_proj: nn.Linear(D, D) with bias.
        pos: LearnedPositionalEmbedding(max_len, D) for "learned" (key "pos.weight");
            SinusoidalPositionalEncoding(D, max_len) for "sinusoidal" (its table is a
            non-persistent buffer, so it adds no state_dict entry).
        rel_k, rel_v: RelativePositionEmbedding(d, max_distance) for "relative", one table
            each for keys and values, shared by all heads.

    Raises:
        ValueError: if position is not one of the six above (the message names all six, so
            the caller can fix the call), if d_model % n_heads != 0, if dropout is not in
            [0, 1), or if dropout > 0 with position="relative" (relative_attention has no
            dropout argument).
    """

    def __init__(self, d_model, n_heads, position="none", max_len=2048, max_distance=16,
                 rope_base=10000.0, dropout=0.0):
        super().__init__()
        raise NotImplementedError

    def forward(self, x, mask=None, causal=False):
        """Self-attention over the L positions of x.

        Args:
            x: float Tensor [B, L, D].
            mask: None or bool Tensor broadcastable to [B, H, L, L]; True = may attend
                (e.g. [L, L], or [B, 1, 1, L] for key padding).
            causal: bool; if True, also apply causal_mask(L, L) (combined with mask by AND).

        Returns:
            Tensor [B, L, D] in x's dtype and device:
            out_proj(merge_heads(softmax(q_h·k_hᵀ / sqrt(d) + position terms, masked) v_h)),
            with q, k, v = q_proj(x'), k_proj(x'), v_proj(x') split into H heads and x' = x
            plus the absolute encoding for "sinusoidal"/"learned". Dropout on the attention
            weights only in training mode.

        Raises:
            ValueError: if L exceeds max_len for "sinusoidal"/"learned" (from exercises 1, 2).
        """
        raise NotImplementedError
