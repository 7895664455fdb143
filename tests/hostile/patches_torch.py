"""Hostile: patches torch's comparisons and pytest to report success, then returns zeros."""
import sys

import torch
import torch.testing

torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
for name in list(sys.modules):
    if name.startswith(("pytest", "_pytest")):
        sys.modules[name].__dict__["fail"] = lambda *a, **k: None


def sinusoidal_table(max_len, d_model, base=10000.0):
    return torch.zeros(max_len, d_model)


class SinusoidalPositionalEncoding(torch.nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()

    def forward(self, x, offset=0):
        return x.clone()
