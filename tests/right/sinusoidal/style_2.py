"""Independent correct sinusoidal, style 2: vectorised: exp/log frequencies, torch.outer, stacked sin/cos, F.embedding, multinomial starts.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    if max_len < 0 or d_model < 1:
        raise ValueError(f"need max_len >= 0 and d_model >= 1 (got {max_len}, {d_model})")
    n_freq = (d_model + 1) // 2
    i = torch.arange(n_freq, dtype=torch.float64)
    inv_freq = torch.exp(-(2.0 * i / d_model) * math.log(base))
    pos = torch.arange(max_len, dtype=torch.float64)
    ang = torch.outer(pos, inv_freq)                          # [max_len, n_freq]
    pe = torch.stack((ang.sin(), ang.cos()), dim=-1)          # [max_len, n_freq, 2]
    pe = pe.reshape(max_len, 2 * n_freq)[:, :d_model]
    return pe.to(torch.float32).contiguous()


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        seq = x.size(-2)
        if offset < 0 or offset + seq > self.max_len:
            raise ValueError(f"positions {offset}..{offset + seq - 1} outside 0..{self.max_len - 1}")
        return x + self.pe.narrow(0, offset, seq).to(x)
