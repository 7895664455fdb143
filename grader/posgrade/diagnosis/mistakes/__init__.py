"""Known mistakes: naming what a learner got wrong, not only that it is wrong.

Each exercise has a module here, posgrade/diagnosis/mistakes/<exercise>.py, with MISTAKES: the few
well-known ways people get that exercise wrong, beside the exercise's hints in the catalog
(posgrade.kit.catalog reads both by exercise name). A Mistake is detected in one of two ways:

    edits    source edits that turn the reference solution into the mistaken one, as
             ((old, new), ...) on solutions/<exercise>.py; `old` must occur exactly once.
             The edited module (a "mutant") reruns every call the failed case made to the
             learner's code, on the same inputs; when all its results agree with the
             learner's (within a loose tolerance) and at least one differs from the
             reference's, the learner made that mistake.
    matches  a predicate on the failed case's calls, for mistakes seen in properties of the
             output rather than in its values (random draws, initial weights).

diagnose() runs when a case fails on a wrong result (kind "wrong"); plugin.py adds the first
matching mistake to the case (CaseResult.mistake) and its explanation and hint to the message.
"""

import importlib
import types
from dataclasses import dataclass

import torch

from posgrade.kit import wire
from posgrade.diagnosis.compare import tolerance


@dataclass(frozen=True)
class Mistake:
    name: str  # a short id; tests/wrong/<exercise>/<name>.py is a real implementation making it
    title: str  # "sin and cos swapped": what a tutor would call it
    explanation: str  # one line: what is wrong, in terms of the spec
    hint: str  # what leads to the fix
    edits: tuple = ()  # ((old, new), ...) on the reference's source
    matches: object = None  # or a predicate matches(calls) -> bool

    def line(self):
        """The report's line for it."""
        return f"looks like: {self.title} — {self.explanation}\nhint: {self.hint}"


@dataclass
class Call:
    """One call a case made to the learner's code, with what came back."""

    op: str  # "call" (a function of the learner's module) or "probe" (posgrade.kit.probes)
    name: str  # the function's or the probe's name
    args: tuple
    kwargs: dict
    value: object = None
    error: str = ""  # the learner's exception class name when the call raised


def of(exercise):
    """The MISTAKES of an exercise ([] when it has none)."""
    try:
        module = importlib.import_module(f"posgrade.diagnosis.mistakes.{exercise}")
    except ModuleNotFoundError:
        return []
    return list(module.MISTAKES)


def get(exercise, name):
    for m in of(exercise):
        if m.name == name:
            return m
    raise KeyError(f"{exercise} has no known mistake {name!r}")


# -- mutants ------------------------------------------------------------------------------

_MUTANTS = {}


def reference_source(exercise):
    from posgrade.kit import state

    return (state.kit_dir("solutions") / f"{exercise}.py").read_text()


def mutant(exercise, mistake):
    """The reference module of `exercise` with `mistake`'s edits applied: a fresh module, not in
    sys.modules, whose relative imports still reach the other reference solutions."""
    key = (exercise, mistake.name)
    if key not in _MUTANTS:
        source = reference_source(exercise)
        for old, new in mistake.edits:
            count = source.count(old)
            if count != 1:
                raise ValueError(f"mistake {exercise}/{mistake.name}: {old!r} occurs {count} times in "
                                 f"solutions/{exercise}.py, expected once")
            source = source.replace(old, new)
        module = types.ModuleType(f"posgrade.solutions.{exercise}")
        module.__package__ = "posgrade.solutions"
        module.__file__ = f"<{exercise} with mistake {mistake.name}>"
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        _MUTANTS[key] = module
    return _MUTANTS[key]


def replay(module, call):
    """Run `call` on module (a mutant) in this process: (value, error class name or "")."""
    from posgrade.kit import probes

    args, kwargs = _live(call.args), _live(call.kwargs)
    try:
        with torch.random.fork_rng(devices=[]):
            if call.op == "probe":
                return probes.run(call.name, module, *args, **kwargs), ""
            return getattr(module, call.name)(*args, **kwargs), ""
    except Exception as err:  # a mistake may well make the reference raise
        return None, type(err).__name__


def _live(obj):
    """Wire stand-ins back to live objects (a Gen to a seeded torch.Generator)."""
    if isinstance(obj, wire.Gen):
        return torch.Generator().manual_seed(obj.seed)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_live(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _live(v) for k, v in obj.items()}
    return obj


# -- agreement ----------------------------------------------------------------------------

def agree(a, b):
    """a and b are the same result up to a loose tolerance (10x the grader's, and 0.1% of the
    result's scale): the same mistake computed another way (float64, another formula) agrees."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype or a.device.type != b.device.type:
            return False
        if a.numel() == 0:
            return True
        if not (a.is_floating_point() or a.is_complex()):
            return bool(torch.equal(a.cpu(), b.cpu()))
        x, y = a.detach().cpu().to(torch.complex128 if a.is_complex() else torch.float64), \
            b.detach().cpu().to(torch.complex128 if b.is_complex() else torch.float64)
        fx, fy = torch.isfinite(x), torch.isfinite(y)
        if not torch.equal(fx, fy):
            return False
        if not torch.equal(torch.isnan(x), torch.isnan(y)) or not torch.equal(x[torch.isinf(x)], y[torch.isinf(y)]):
            return False
        x, y = x[fx], y[fy]
        rtol, atol = tolerance(a.dtype, a.device.type)
        scale = float(y.abs().max()) if y.numel() else 0.0
        return bool(((x - y).abs() <= max(10 * atol, 1e-3 * scale) + 10 * rtol * y.abs()).all())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(agree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(agree(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6 * (1 + abs(b))
    if isinstance(a, wire.Opaque) or isinstance(b, wire.Opaque):
        return False
    return type(a) is type(b) and a == b


def _outcome_agrees(value, error, call):
    if call.error or error:
        return call.error == error
    return agree(call.value, value)


# -- diagnosis ----------------------------------------------------------------------------

def diagnose(exercise, calls, reference):
    """The first known mistake of `exercise` that explains `calls` (the failed case's calls to
    the learner's code, with their results), or None. reference is the reference module."""
    calls = [c for c in calls if c.op in ("call", "probe")]
    if not calls:
        return None
    expected = None
    for mistake in of(exercise):
        if mistake.matches is not None:
            try:
                if mistake.matches(calls):
                    return mistake
            except Exception:  # a predicate meeting an output it did not expect: not this mistake
                pass
            continue
        if expected is None:
            expected = [replay(reference, c) for c in calls]
        module = mutant(exercise, mistake)
        differs = False
        for call, (ref_value, ref_error) in zip(calls, expected):
            value, error = replay(module, call)
            if not _outcome_agrees(value, error, call):
                break
            if not differs and not (error == ref_error and (error or agree(value, ref_value))):
                differs = True
        else:
            if differs:
                return mistake
    return None
