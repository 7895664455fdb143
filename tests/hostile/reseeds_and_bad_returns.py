"""Hostile: reseeds torch's global RNG and returns a list, the wrong dtype or the wrong device."""
import torch


def sinusoidal_table(max_len, d_model, base=10000.0):
    torch.manual_seed(0)
    if max_len % 2:
        return [[0.0] * d_model] * max_len  # a list, not a tensor
    return torch.zeros(max_len, d_model, dtype=torch.float64)  # wrong dtype


class SinusoidalPositionalEncoding(torch.nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        torch.manual_seed(1234)

    def forward(self, x, offset=0):
        return x.to(torch.float64)
