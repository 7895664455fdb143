"""Independent correct sinusoidal, style 1: explicit: math.pow column by column in float64, nested-list position ids, a Python loop per row.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if d_model < 1:
        raise ValueError(f"d_model must be >= 1, got {d_model}")
    table = torch.empty(max_len, d_model, dtype=torch.float64)
    positions = torch.arange(max_len, dtype=torch.float64)
    for j in range(d_model):
        i = j // 2
        w = math.pow(base, -2.0 * i / d_model)
        angle = positions * w
        table[:, j] = torch.sin(angle) if j % 2 == 0 else torch.cos(angle)
    return table.to(torch.float32)


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.base = base
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        L = x.shape[1]
        if offset < 0:
            raise ValueError("offset must be >= 0")
        if offset + L > self.max_len:
            raise ValueError(f"offset + L = {offset + L} exceeds max_len = {self.max_len}")
        pe = self.table[offset:offset + L]
        pe = pe.to(device=x.device, dtype=x.dtype)
        return x + pe.unsqueeze(0)
