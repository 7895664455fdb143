"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 1 with the errors the spec asks for, but every value is noise, so a
value case fails and the grader must not pretend to know why.
"""

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    if max_len < 0 or d_model < 1:
        raise ValueError("max_len must be >= 0 and d_model >= 1")
    return torch.rand(max_len, d_model) * 2 - 1


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        if offset < 0 or offset + x.shape[-2] > self.max_len:
            raise ValueError("positions do not fit in max_len")
        return x + torch.randn_like(x)
