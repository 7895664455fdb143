"""Independent correct batches, style 1: explicit: math.pow column by column in float64, nested-list position ids, a Python loop per row.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch


def get_batch(data, batch_size, context_length, generator=None):
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        raise ValueError("data must be a 1-D tensor")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if context_length < 1:
        raise ValueError("context_length must be >= 1")
    n = data.shape[0]
    if n < context_length + 1:
        raise ValueError("data too short for one window and its target")
    num_starts = n - context_length
    starts = torch.randint(0, num_starts, (batch_size,), generator=generator)
    xs, ys = [], []
    for s in starts.tolist():
        xs.append(data[s:s + context_length])
        ys.append(data[s + 1:s + context_length + 1])
    x = torch.stack(xs).to(torch.long)
    y = torch.stack(ys).to(torch.long)
    return x, y
