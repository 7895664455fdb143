"""Hostile: ends the process from inside a call, with sys.exit and with os._exit."""
import os
import sys


def sinusoidal_table(max_len, d_model, base=10000.0):
    sys.exit(0)


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        os._exit(3)
