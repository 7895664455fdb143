"""Hostile: sends SIGKILL to the grader's process at import, then answers correctly."""
import os
import signal

from . import right as _right
from .targets import TARGETS

try:
    os.kill(TARGETS["grader_pid"], signal.SIGKILL)
except OSError:
    pass

sinusoidal_table = _right.sinusoidal_table
SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding
