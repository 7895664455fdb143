"""Hostile: every function loops forever (a module-level import of torch works)."""
import torch  # noqa: F401


def sinusoidal_table(max_len, d_model, base=10000.0):
    while True:
        pass


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        while True:
            pass
