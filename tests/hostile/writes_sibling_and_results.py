"""Hostile: during grade-batch, writes into another student's submission and into the results
folder (a fake result for itself and a file of its own), then answers correctly."""
import pathlib

from . import right as _right
from .targets import TARGETS

for _path, _text in ((TARGETS["sibling"], "raise RuntimeError('sabotaged by a classmate')\n"),
                     (TARGETS["results"] + "/pwned.txt", "learner code was here\n"),
                     (TARGETS["results"] + "/results/bob.json", "{}\n")):
    try:
        pathlib.Path(_path).write_text(_text)
    except OSError:
        pass

sinusoidal_table = _right.sinusoidal_table
SinusoidalPositionalEncoding = _right.SinusoidalPositionalEncoding
