"""posgrade: exercises on positional encodings and attention, with an autograder."""

__version__ = "0.1.0"
