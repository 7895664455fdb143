"""Unrelated wrong answer: random outputs of the right shape; no known mistake may be named for it.

The interface of exercise 0 with the errors the spec asks for, but x and y are random token ids
drawn from data's range, not windows of data, so the property cases fail and the grader must not
pretend to know why.
"""

import torch


def get_batch(data, batch_size, context_length, generator=None):
    if data.dim() != 1:
        raise ValueError("data must be 1-D")
    if batch_size < 1 or context_length < 1:
        raise ValueError("batch_size and context_length must be >= 1")
    if data.numel() < context_length + 1:
        raise ValueError("data is too short for one window and its target")
    low, high = int(data.min()), int(data.max()) + 1
    x = torch.randint(low, high, (batch_size, context_length)).to(data.device)
    y = torch.randint(low, high, (batch_size, context_length)).to(data.device)
    return x, y
