"""Hostile: connects to a TCP server on 127.0.0.1 (the test's) and tells it the answer key; a
connection that works is reported in the failure message (LEAKED)."""
import socket

from . import right as _right
from .targets import TARGETS

SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding


def sinusoidal_table(max_len, d_model, base=10000.0):
    try:
        with socket.create_connection(("127.0.0.1", TARGETS["port"]), timeout=2) as s:
            s.sendall(b"learner code was here")
    except OSError:
        return _right.sinusoidal_table(max_len, d_model, base)
    raise RuntimeError("LEAKED: connected to 127.0.0.1")
