"""batches — next-token training pairs from a token stream.

A language model learns to predict token t+1 from tokens 0..t. Training batches are
random windows cut from one long stream of token ids: the input x is a window and the
target y is the same window shifted one token to the right.

Worked example, data = [10, 11, 12, 13, 14, 15], context_length = 3:
the valid starts are 0, 1, 2 (start 3 would need data[6] for its last target), and
start 1 gives x = [11, 12, 13], y = [12, 13, 14].
"""

import torch


def get_batch(data, batch_size, context_length, generator=None):
    """Draw `batch_size` random (input, target) windows from a token stream.

    Args:
        data: LongTensor [N], the token stream, on any device.
        batch_size: int B >= 1, the number of windows.
        context_length: int L >= 1, the length of each window.
        generator: optional CPU torch.Generator; when given, every random draw uses it,
            so the same generator state gives the same batch (the global RNG is untouched).

    Returns:
        (x, y): two LongTensors [B, L] on data's device. Row r of x is data[s_r : s_r + L]
        and row r of y is data[s_r + 1 : s_r + L + 1], with each start s_r drawn
        independently and uniformly from every valid start 0 .. N - L - 1.

    Raises:
        ValueError: if data is not 1-D, or N < L + 1 (too short for one window and its
            target), or batch_size < 1, or context_length < 1.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if batch_size < 1 or context_length < 1:
        raise ValueError(f"batch_size and context_length must be >= 1, got {batch_size} and {context_length}")
    n = data.numel()
    if n < context_length + 1:
        raise ValueError(f"data has {n} tokens, needs at least context_length + 1 = {context_length + 1}")
    # high is exclusive: the last valid start is n - context_length - 1
    starts = torch.randint(0, n - context_length, (batch_size,), generator=generator)  # [B] on CPU
    offsets = torch.arange(context_length)  # [L]
    idx = (starts[:, None] + offsets[None, :]).to(data.device)  # [B, L]
    x = data[idx]
    y = data[idx + 1]
    return x, y
