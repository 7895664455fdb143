"""Hostile: reads an environment variable of the grader's (a CI token); LEAKED when it can."""
import os

from . import right as _right
from .targets import TARGETS

SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding


def sinusoidal_table(max_len, d_model, base=10000.0):
    value = os.environ.get(TARGETS["env"])
    if value is None:
        return _right.sinusoidal_table(max_len, d_model, base)
    raise RuntimeError(f"LEAKED: {TARGETS['env']}={value}")
