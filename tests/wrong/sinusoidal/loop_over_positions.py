"""Mistake: the table is filled one position at a time in a Python loop instead of with broadcasting.
Caught by: test_efficiency

A real wrong implementation for posgrade's own tests: correct values, far too slow.
"""

import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if d_model < 1:
        raise ValueError(f"d_model must be >= 1, got {d_model}")
    table = torch.empty(max_len, d_model)
    for pos in range(max_len):
        for j in range(d_model):
            angle = pos / base ** (2 * (j // 2) / d_model)
            table[pos, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return table


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        seq_len = x.shape[-2]
        if offset < 0 or offset + seq_len > self.max_len:
            raise ValueError(f"positions {offset}..{offset + seq_len - 1} do not fit in max_len={self.max_len}")
        return x + self.table[offset : offset + seq_len].to(device=x.device, dtype=x.dtype)
