"""Known mistakes of the batches exercise (see posgrade.diagnosis.mistakes for how each is detected).

get_batch is random and graded by properties of its draws, so its mistakes are predicates on
the failed case's calls, never replays of the reference's own random numbers. The hidden
cases' token streams are permutations (every token distinct), so each row's start in data
can be read back from its tokens. Every predicate first checks that the rows it reasons
about are real windows of data, so random tokens (or any output that is not made of
windows) never match one.
"""

import torch

from posgrade.kit import wire
from posgrade.diagnosis.mistakes import Mistake


def _draws(calls):
    """(data, batch_size, context_length, generator seed or None, x, y) for each get_batch call
    that returned two LongTensors [B, L] for a 1-D data of distinct tokens."""
    out = []
    for c in calls:
        if c.op != "call" or c.name != "get_batch" or c.error or len(c.args) < 3:
            continue
        data, b, length = c.args[:3]
        gen = c.kwargs.get("generator", c.args[3] if len(c.args) > 3 else None)
        value = c.value
        if not (isinstance(data, torch.Tensor) and data.dim() == 1 and isinstance(value, (tuple, list))
                and len(value) == 2 and all(isinstance(t, torch.Tensor) for t in value)):
            continue
        x, y = (t.detach().cpu() for t in value)
        if x.dtype != torch.long or y.dtype != torch.long or x.shape != (b, length) or y.shape != (b, length):
            continue
        data = data.cpu()
        if torch.unique(data).numel() != data.numel():
            continue
        out.append((data, b, length, gen.seed if isinstance(gen, wire.Gen) else None, x, y))
    return out


def _starts(data, x):
    """The start in data of each row of x, when every row is a contiguous window of data; else None."""
    n, length = data.numel(), x.shape[1]
    if x.numel() == 0 or n == 0:
        return None
    order = torch.argsort(data)
    first = x[:, 0]
    pos = torch.searchsorted(data[order], first).clamp(max=n - 1)
    if not torch.equal(data[order][pos], first):
        return None
    s = order[pos]
    idx = s[:, None] + torch.arange(length)
    if (idx >= n).any() or not torch.equal(data[idx], x):
        return None
    return s


def _shifted(data, s, y):
    """y's rows are the targets of the windows at starts s: data[s + 1 : s + L + 1]."""
    idx = s[:, None] + torch.arange(1, y.shape[1] + 1)
    return bool((idx < data.numel()).all()) and torch.equal(data[idx.clamp(max=data.numel() - 1)], y)


def _y_is_x(calls):
    """Every batch has y equal to x, and one of them is made of real windows."""
    draws = _draws(calls)
    if not draws or not all(torch.equal(x, y) for *_, x, y in draws):
        return False
    return any(x.numel() >= 2 and _starts(data, x) is not None for data, *_, x, _ in draws)


def _one_start(calls):
    """A batch of at least 8 real windows, from a stream with at least 8 valid starts, whose rows all
    share one start (independent draws would almost never collide)."""
    for data, b, length, _, x, _ in _draws(calls):
        if b >= 8 and data.numel() - length >= 8:
            s = _starts(data, x)
            if s is not None and bool((s == s[0]).all()):
                return True
    return False


def _consecutive(calls):
    """A batch of at least 8 real windows in which each row starts L tokens after the previous one
    (counted around the valid starts, for code that wraps): consecutive chunks of one long window."""
    for data, b, length, _, x, _ in _draws(calls):
        valid = data.numel() - length
        if b >= 8 and valid >= 8 and length % valid != 0:
            s = _starts(data, x)
            if s is not None and bool((((s[1:] - s[:-1]) - length) % valid == 0).all()):
                return True
    return False


def _last_start_missing(calls):
    """Many draws (20 per valid start) of real windows that reach every valid start but the last,
    N - L - 1, and never it."""
    for data, b, length, _, x, _ in _draws(calls):
        valid = data.numel() - length
        if valid >= 3 and b >= 20 * valid:
            s = _starts(data, x)
            if s is None:
                continue
            counts = torch.bincount(s, minlength=data.numel())
            if bool((counts[: valid - 1] > 0).all()) and int(counts[valid - 1:].sum()) == 0:
                return True
    return False


def _generator_ignored(calls):
    """Two calls on the same data and sizes, with generators of the same seed, returned different
    batches, both of real windows with their shifted targets."""
    good = []
    for data, b, length, seed, x, y in _draws(calls):
        if seed is None:
            continue
        s = _starts(data, x)
        if s is not None and _shifted(data, s, y):
            good.append((data, b, length, seed, x))
    for i, (d1, b1, l1, s1, x1) in enumerate(good):
        for d2, b2, l2, s2, x2 in good[i + 1:]:
            if (b1, l1, s1) == (b2, l2, s2) and b1 >= 4 and torch.equal(d1, d2) and not torch.equal(x1, x2):
                return True
    return False


MISTAKES = [
    Mistake(
        "y_not_shifted", "target not shifted",
        "y should be the window shifted by one token, data[s + 1 : s + L + 1]; yours is the window "
        "itself, so the model would learn to copy its input",
        "Index the targets one further: x = data[s : s + L], y = data[s + 1 : s + L + 1] (idx + 1).",
        matches=_y_is_x,
    ),
    Mistake(
        "one_start_per_batch", "one start for the whole batch",
        "each row should have its own random start; yours draws one start and repeats that window in "
        "every row, so a batch holds one example B times",
        "Draw batch_size starts at once: torch.randint(0, N - L, (batch_size,), generator=generator).",
        matches=_one_start,
    ),
    Mistake(
        "consecutive_chunks", "rows are consecutive chunks",
        "each row's start should be drawn independently; yours cuts one long random window into "
        "consecutive chunks, so row r + 1 always starts L tokens after row r",
        "Draw a separate start for every row (torch.randint with size (batch_size,)) instead of one "
        "start plus r * L.",
        matches=_consecutive,
    ),
    Mistake(
        "last_start_missing", "last valid start never drawn",
        "starts should range over 0 .. N - L - 1, the last included; yours never draws N - L - 1 "
        "because torch.randint's high bound is already exclusive and you subtracted one more",
        "torch.randint(low, high, ...) excludes high: the high for starts 0 .. N - L - 1 is N - L.",
        matches=_last_start_missing,
    ),
    Mistake(
        "ignores_generator", "generator ignored",
        "with a generator every draw should use it, so the same seed gives the same batch; yours draws "
        "from the global RNG, so a seeded generator does not reproduce the batch",
        "Pass it on: torch.randint(0, N - L, (batch_size,), generator=generator) (None then means the "
        "global RNG).",
        matches=_generator_ignored,
    ),
]
