"""Mistake: the frequencies always use 10000 (the paper's constant), whatever base is
Caught by: test_base

A real wrong implementation for posgrade's own tests: the reference with this one mistake,
written the way it was seen in published code (issue 14).

sinusoidal — the absolute position encoding of "Attention Is All You Need".

Each position gets a fixed vector of sines and cosines at geometrically spaced
frequencies; the model adds it to the token embeddings. Column j uses frequency index
i = j // 2, so sin and cos of the same angle sit side by side (the paper's layout; Hugging
Face XLM and the PyTorch tutorial use it too, while tensor2tensor and fairseq put all sines
first and all cosines after):

    PE[pos, 2i]     = sin(pos / base^(2i / d_model))
    PE[pos, 2i + 1] = cos(pos / base^(2i / d_model))

Worked example, d_model = 4, base = 10000: frequencies 1 and 1/100, so
    PE[0] = [sin 0, cos 0, sin 0, cos 0]          = [0, 1, 0, 1]   (row 0 is not zeros)
    PE[1] = [sin 1, cos 1, sin 0.01, cos 0.01]    = [0.841, 0.540, 0.010, 1.000]
"""

import math

import torch
import torch.nn as nn


def sinusoidal_table(max_len, d_model, base=10000.0):
    """The sinusoidal position table.

    Args:
        max_len: int >= 0, the number of positions (rows).
        d_model: int >= 1, the width (columns); odd widths are allowed, the last column is
            then a sine.
        base: float, the wavelength scale (10000 in the paper).

    Returns:
        float32 Tensor [max_len, d_model] on the CPU, with
        table[pos, j] = sin(pos * w) for even j and cos(pos * w) for odd j,
        where w = base^(-2 * (j // 2) / d_model).

    Raises:
        ValueError: if max_len < 0 or d_model < 1.
    """
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    if d_model < 1:
        raise ValueError(f"d_model must be >= 1, got {d_model}")
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]  # [max_len, 1]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float32)  # [ceil(d/2)] = 0, 2, 4, ...
    inv_freq = 1.0 / (10000 ** (two_i / d_model))  # base^(-2i/d)
    angle = pos * inv_freq  # [max_len, ceil(d/2)]
    table = torch.empty(max_len, d_model)
    table[:, 0::2] = torch.sin(angle)
    # with an odd d_model there is one cosine column fewer than sine columns
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the sinusoidal table to its input. No parameters: nothing here is trained.

    Args:
        d_model: int >= 1, the model width D.
        max_len: int >= 0, the longest offset + L that forward accepts.
        base: float, as in sinusoidal_table.

    The table is a buffer registered with persistent=False, so it follows the module's
    device (module.to("cuda")) but is not part of state_dict().
    """

    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.d_model = d_model
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        """Add positions offset .. offset + L - 1 to x.

        Args:
            x: float Tensor [B, L, D] (any float dtype, any device).
            offset: int >= 0, the position of x[:, 0] (tokens already seen, as with a KV cache).

        Returns:
            x + table[offset : offset + L], a new Tensor [B, L, D] in x's dtype and on x's
            device; x itself is not modified.

        Raises:
            ValueError: if offset < 0 or offset + L > max_len.
        """
        seq_len = x.shape[-2]
        if offset < 0 or offset + seq_len > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + seq_len - 1} do not fit in max_len={self.max_len}"
            )
        pe = self.table[offset : offset + seq_len]  # [L, D]
        return x + pe.to(device=x.device, dtype=x.dtype)
