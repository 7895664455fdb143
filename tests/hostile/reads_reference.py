"""Hostile: reads the installed reference solution file directly; LEAKED when it can."""
from . import right as _right
from .targets import TARGETS

SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding


def sinusoidal_table(max_len, d_model, base=10000.0):
    try:
        with open(TARGETS["reference"]) as f:
            text = f.read()
    except OSError:
        return _right.sinusoidal_table(max_len, d_model, base)
    raise RuntimeError(f"LEAKED: read {len(text)} characters of the reference")
