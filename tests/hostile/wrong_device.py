"""Hostile: right values, wrong device: results come back on the meta device, the one other
device a CPU-only machine has (on a GPU machine a CUDA result for CPU input is the same case)."""
import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    return _table(max_len, d_model, base).to("meta")


def _table(max_len, d_model, base):
    if max_len < 0 or d_model < 1:
        raise ValueError("max_len must be >= 0 and d_model >= 1")
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    angle = pos * torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(base) / d_model))
    table = torch.empty(max_len, d_model)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", _table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        if offset < 0 or offset + x.shape[-2] > self.max_len:
            raise ValueError("positions do not fit in max_len")
        return (x + self.table[offset : offset + x.shape[-2]].to(x.dtype)).to("meta")
