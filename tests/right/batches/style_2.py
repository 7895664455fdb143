"""Independent correct batches, style 2: vectorised: exp/log frequencies, torch.outer, stacked sin/cos, F.embedding, multinomial starts.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch


def get_batch(data, batch_size, context_length, generator=None):
    if data.ndim != 1:
        raise ValueError("data must be 1-D")
    if batch_size < 1 or context_length < 1:
        raise ValueError("batch_size and context_length must be >= 1")
    n_starts = data.numel() - context_length
    if n_starts < 1:
        raise ValueError("data is too short")
    weights = torch.ones(n_starts)
    starts = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
    idx = starts[:, None] + torch.arange(context_length)[None, :]
    idx = idx.to(data.device)
    return data[idx], data[idx + 1]
