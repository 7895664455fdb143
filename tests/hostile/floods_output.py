"""Hostile: prints 100 MB through Python and writes 100 MB to the process's stdout directly."""
import os


def sinusoidal_table(max_len, d_model, base=10000.0):
    for _ in range(100):
        print("y" * (1 << 20))
    raise RuntimeError("after printing")


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        block = b"z" * (1 << 20)
        for _ in range(100):
            os.write(1, block)
