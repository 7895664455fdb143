"""Hostile: hands in the reference solution instead of its own code."""
from posgrade.solutions.sinusoidal import SinusoidalPositionalEncoding, sinusoidal_table  # noqa: F401
