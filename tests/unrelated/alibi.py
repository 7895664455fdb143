"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 6 with the errors the spec asks for, but the slopes and the bias
are noise (positive slopes, a non-positive bias, as ALiBi's are), so a value case fails and
the grader must not pretend to know why.
"""

import torch


def alibi_slopes(n_heads, device=None):
    if n_heads < 1:
        raise ValueError("n_heads must be >= 1")
    return torch.rand(n_heads, device=device)


def alibi_bias(n_heads, len_q, len_k, device=None):
    if n_heads < 1 or len_q < 0 or len_k < 0 or len_q > len_k:
        raise ValueError("need n_heads >= 1 and 0 <= len_q <= len_k")
    return -torch.rand(n_heads, len_q, len_k, device=device) * 4
