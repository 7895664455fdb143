"""Hostile: at import, overwrites the installed reference solution and a hidden case file with
itself (the dishonest student of issue 13), then answers correctly. Paths: targets.py (the test)."""
import pathlib

from . import right as _right
from .targets import TARGETS

for _key in ("reference", "case"):
    try:
        _path = pathlib.Path(TARGETS[_key])
        _path.write_text(_path.read_text() + "\n# tampered by learner code\n")
    except OSError:
        pass

sinusoidal_table = _right.sinusoidal_table
SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding
