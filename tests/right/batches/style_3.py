"""Independent correct batches, style 3: blog style: Annotated Transformer div_term buffer, randn * std, data.unfold windows.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch


def get_batch(data, batch_size, context_length, generator=None):
    if data.dim() != 1:
        raise ValueError("data must be 1-D")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if context_length < 1:
        raise ValueError("context_length must be >= 1")
    N = len(data)
    if N < context_length + 1:
        raise ValueError(f"need at least {context_length + 1} tokens, got {N}")
    n_valid = N - context_length
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    starts = (u * n_valid).floor().long().clamp_(max=n_valid - 1)
    windows = data.unfold(0, context_length + 1, 1)[starts.to(data.device)]  # [B, L+1]
    return windows[:, :-1], windows[:, 1:]
