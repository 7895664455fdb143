"""Independent correct learned, style 1: explicit: math.pow column by column in float64, nested-list position ids, a Python loop per row.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch
import torch.nn as nn


def position_ids(batch_size, seq_len, past_length=0, device=None):
    if batch_size < 0 or seq_len < 0 or past_length < 0:
        raise ValueError("batch_size, seq_len and past_length must be >= 0")
    rows = [[past_length + t for t in range(seq_len)] for _ in range(batch_size)]
    out = torch.tensor(rows, dtype=torch.long) if batch_size > 0 and seq_len > 0 \
        else torch.zeros(batch_size, seq_len, dtype=torch.long)
    if device is not None:
        out = out.to(device)
    return out


class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, max_len, d_model, init_std=0.02):
        super().__init__()
        self.max_len = max_len
        self.d_model = d_model
        self.init_std = init_std
        w = torch.empty(max_len, d_model)
        with torch.no_grad():
            w.normal_(mean=0.0, std=init_std)
        self.weight = nn.Parameter(w)

    def forward(self, x, past_length=0):
        L = x.shape[1]
        if past_length < 0:
            raise ValueError("past_length must be >= 0")
        if past_length + L > self.max_len:
            raise ValueError("past_length + L exceeds max_len")
        return x + self.weight[past_length:past_length + L]
