"""Independent correct sinusoidal, style 3: blog style: Annotated Transformer div_term buffer, randn * std, data.unfold windows.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    if max_len < 0:
        raise ValueError("max_len < 0")
    if d_model < 1:
        raise ValueError("d_model < 1")
    pe = torch.zeros(max_len, d_model)
    position = torch.arange(0, max_len).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * -(math.log(base) / d_model))
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])
    return pe


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        pe = sinusoidal_table(max_len, d_model, base).unsqueeze(0)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x, offset=0):
        if offset < 0:
            raise ValueError("offset < 0")
        if offset + x.size(1) > self.max_len:
            raise ValueError("sequence too long")
        return x + self.pe[:, offset:offset + x.size(1)].to(dtype=x.dtype, device=x.device)
