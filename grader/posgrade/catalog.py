"""The exercise catalog: the one table that the CLI, runner and reporters read.

Each row names an exercise (its stub is exercises/<name>.py, its reference
solutions/<name>.py, its hidden cases cases/test_<name>.py), its place in the learner's
order, what it is worth in a run's total, and its hints, shown one at a time by
`posgrade hint NAME`.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    points: int  # the exercise's weight in a run's total; its cases share it by their own points
    hints: tuple
    bonus: bool = False

    @property
    def file(self):
        return f"{self.name}.py"

    @property
    def cases(self):
        return f"test_{self.name}.py"


EXERCISES = (
    Exercise(
        "batches",
        "Next-token batches from a token stream",
        5,
        (
            "The valid starts are 0 .. N - L - 1: the window needs L tokens and its target one more.",
            "torch.randint(low, high, ...) never returns high; pass generator=generator to it.",
            "Build an index matrix starts[:, None] + arange(L)[None, :] and index data with it; "
            "y uses the same indices plus one.",
        ),
    ),
    Exercise(
        "sinusoidal",
        "Sinusoidal absolute position encoding",
        10,
        (
            "Columns 2i and 2i+1 share one frequency, base^(-2i/d_model): use the even index 2i, not i.",
            "Even columns hold sin, odd columns cos, so row 0 is [0, 1, 0, 1, ...], not zeros.",
            "With an odd d_model there is one more sine column than cosine columns: "
            "table[:, 1::2] takes angle[:, : d_model // 2].",
            "Register the table with self.register_buffer(name, table, persistent=False), and in "
            "forward cast it to x.dtype and x.device; never add into x in place.",
        ),
    ),
    Exercise(
        "learned",
        "Learned absolute position embedding (GPT-2 wpe)",
        10,
        (
            "With a KV cache the new tokens sit at past_length, past_length + 1, ...: add past_length.",
            "Create the table once in __init__ as nn.Parameter(torch.empty(max_len, d_model)) and "
            "fill it with nn.init.normal_(..., std=init_std).",
            "No padding_idx: position 0 is a real position and needs gradients.",
        ),
    ),
)

_BY_NAME = {e.name: e for e in EXERCISES}


def names():
    return [e.name for e in EXERCISES]


def get(name):
    """The exercise called name; KeyError with the closest names when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, names(), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; the exercises are {', '.join(names())}"
        raise KeyError(f"no exercise called {name!r}{hint}") from None
