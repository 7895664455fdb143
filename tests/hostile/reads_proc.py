"""Reads /proc as code that trusts it does (CUDA's driver among them): /proc/self must be the
number getpid() returns, and the grader's process must not be listed; LEAKED when either fails."""
import os

from . import right as _right
from .targets import TARGETS

SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding


def sinusoidal_table(max_len, d_model, base=10000.0):
    seen = os.readlink("/proc/self")
    if seen != str(os.getpid()):
        raise RuntimeError(f"LEAKED: /proc/self is {seen}, getpid() is {os.getpid()}")
    try:
        listed = os.listdir("/proc")
    except OSError:  # the sandbox may not let it list /proc at all
        listed = []
    if str(TARGETS["grader_pid"]) in listed:
        raise RuntimeError(f"LEAKED: /proc lists the grader's pid {TARGETS['grader_pid']}")
    return _right.sinusoidal_table(max_len, d_model, base)
