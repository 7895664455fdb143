"""Independent correct learned, style 3: blog style: Annotated Transformer div_term buffer, randn * std, data.unfold windows.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch
import torch.nn as nn


def position_ids(batch_size, seq_len, past_length=0, device=None):
    for name, v in (("batch_size", batch_size), ("seq_len", seq_len), ("past_length", past_length)):
        if v < 0:
            raise ValueError(f"{name} must be non-negative, got {v}")
    return (torch.arange(seq_len, device=device) + past_length).repeat(batch_size, 1)


class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, max_len, d_model, init_std=0.02):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * init_std)

    def forward(self, x, past_length=0):
        B, L, _ = x.shape
        if past_length < 0:
            raise ValueError("past_length < 0")
        if past_length + L > self.max_len:
            raise ValueError("past_length + L > max_len")
        pos = position_ids(B, L, past_length, device=x.device)
        return x + self.weight[pos]
