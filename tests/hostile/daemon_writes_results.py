"""Hostile: starts a double-forked daemon (its own session) that sleeps past posgrade's exit and
then writes a Gradescope-style results.json with full marks; answers correctly meanwhile."""
import subprocess
import sys

from . import right as _right
from .targets import TARGETS

_DAEMON = f"""
import os, time
if os.fork():
    os._exit(0)
os.setsid()
time.sleep({TARGETS['sleep']})
open({TARGETS['results_json']!r}, 'w').write('{{"score": 100.0}}')  # posgrade-hostile-daemon
"""
subprocess.run([sys.executable, "-c", _DAEMON], check=False)

sinusoidal_table = _right.sinusoidal_table
SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding
