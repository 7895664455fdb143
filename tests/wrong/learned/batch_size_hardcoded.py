"""Mistake: position_ids always has 2 rows (a batch size hard-coded from a notebook)
Caught by: test_position_ids

A real wrong implementation for posgrade's own tests: the reference with this one mistake.

learned — a trained table of absolute positions (GPT-2's `wpe`).

Instead of a fixed formula, each position 0 .. max_len-1 owns a trainable vector,
initialised from N(0, init_std) (0.02 in Hugging Face GPT-2). With a KV cache the new
tokens continue after the `past_length` tokens already processed, so their positions are
past_length, past_length + 1, ...: forgetting that offset gives every new token position 0.

Worked example, batch_size = 2, seq_len = 3, past_length = 5:
    position_ids(2, 3, 5) = [[5, 6, 7],
                             [5, 6, 7]]
"""

import torch
import torch.nn as nn


def position_ids(batch_size, seq_len, past_length=0, device=None):
    """Absolute positions of the next seq_len tokens, one row per sequence.

    Args:
        batch_size: int B >= 0.
        seq_len: int L >= 0.
        past_length: int >= 0, the number of tokens already processed (KV cache length).
        device: where to create the result (None = the CPU).

    Returns:
        LongTensor [B, L] with every row equal to past_length + arange(L).

    Raises:
        ValueError: if batch_size, seq_len or past_length is negative.
    """
    if batch_size < 0 or seq_len < 0 or past_length < 0:
        raise ValueError(
            f"batch_size, seq_len and past_length must be >= 0, got {batch_size}, {seq_len}, {past_length}"
        )
    pos = torch.arange(past_length, past_length + seq_len, dtype=torch.long, device=device)  # [L]
    return pos.repeat(2, 1)  # BATCH = 2  # clone: a real [B, L], not a view


class LearnedPositionalEmbedding(nn.Module):
    """Adds a trained position vector to each token.

    Args:
        max_len: int >= 1, the number of positions the table holds.
        d_model: int >= 1, the model width D.
        init_std: float, the standard deviation of the N(0, init_std) initialisation.

    Its one parameter is `weight` [max_len, d_model] (requires_grad); no padding row:
    position 0 is a position like any other and gets gradients.
    """

    def __init__(self, max_len, d_model, init_std=0.02):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, mean=0.0, std=init_std)

    def forward(self, x, past_length=0):
        """Add the vectors of positions past_length .. past_length + L - 1.

        Args:
            x: float Tensor [B, L, D].
            past_length: int >= 0, the number of tokens already processed.

        Returns:
            x + weight[past_length : past_length + L], a new Tensor [B, L, D] (torch's type
            promotion of x and weight decides the dtype); gradients reach `weight`, and x is
            not modified.

        Raises:
            ValueError: if past_length < 0 or past_length + L > max_len.
        """
        seq_len = x.shape[-2]
        if past_length < 0 or past_length + seq_len > self.max_len:
            raise ValueError(
                f"positions {past_length}..{past_length + seq_len - 1} do not fit in max_len={self.max_len}"
            )
        return x + self.weight[past_length : past_length + seq_len]  # [L, D] broadcasts over B
