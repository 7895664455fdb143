"""Hostile: sends SIGKILL to its own process from inside a call."""
import os
import signal


def sinusoidal_table(max_len, d_model, base=10000.0):
    os.kill(os.getpid(), signal.SIGKILL)


SinusoidalPositionalEncoding = sinusoidal_table
