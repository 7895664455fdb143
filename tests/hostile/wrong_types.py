"""Hostile: returns things that are not tensors, and prints a lot."""
import numpy as np


def sinusoidal_table(max_len, d_model, base=10000.0):
    print("x" * 100000)
    return np.zeros((2, 3))


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        pass
