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
    raise NotImplementedError
