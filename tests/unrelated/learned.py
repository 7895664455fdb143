"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 2 with the errors the spec asks for and a module with the right
parameter, but every value is noise (positions are random ids in range, the table starts from
uniform noise, forward adds fresh noise to x), so value cases fail and the grader must not
pretend to know why.
"""

import torch
import torch.nn as nn


def position_ids(batch_size, seq_len, past_length=0, device=None):
    if batch_size < 0 or seq_len < 0 or past_length < 0:
        raise ValueError("batch_size, seq_len and past_length must be >= 0")
    return torch.randint(0, max(1, past_length + seq_len), (batch_size, seq_len), dtype=torch.long, device=device)


class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, max_len, d_model, init_std=0.02):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.rand(max_len, d_model) * 2 - 1)

    def forward(self, x, past_length=0):
        if past_length < 0 or past_length + x.shape[-2] > self.max_len:
            raise ValueError("positions do not fit in max_len")
        return x + torch.randn_like(x)
