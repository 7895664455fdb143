"""Hostile: crashes the interpreter with a segmentation fault."""
import ctypes


def sinusoidal_table(max_len, d_model, base=10000.0):
    ctypes.string_at(0)


SinusoidalPositionalEncoding = sinusoidal_table
