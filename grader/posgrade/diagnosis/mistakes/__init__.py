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

import collections
import functools
import importlib
import types
from dataclasses import dataclass, field

import torch

from posgrade.kit import wire
from posgrade.diagnosis.compare import expected_devices, tensors, tolerance


@dataclass(frozen=True)
class Mistake:
    name: str  # a short id; tests/wrong/<exercise>/<name>.py is a real implementation making it
    title: str  # "sin and cos swapped": what a tutor would call it
    explanation: str  # one line: what is wrong, in terms of the spec
    hint: str  # what leads to the fix
    edits: tuple = ()  # ((old, new), ...) on the reference's source
    matches: object = None  # or a predicate matches(calls) -> bool
    parts: tuple = ()  # for a combination ("a+b"): the mistakes it is made of

    def line(self):
        """The report's line for it (one line per part for a combination)."""
        if self.parts:
            return "\n".join([f"looks like: {self.title} ({len(self.parts)} mistakes at once)"] +
                             [f"  {m.title} — {m.explanation}" for m in self.parts] +
                             [f"hint: {m.hint}" for m in self.parts])
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
    message: str = ""  # what the learner was told about that exception, where the grader knows it

    @functools.cached_property
    def digest(self):
        """A digest of the call as the wire sends it (op, name, inputs), or None when it holds
        something the wire's JSON form cannot (its bytes would not be a faithful key). Computed
        once: the same call is replayed on every mutant."""
        import hashlib

        payload = wire.dumps(wire.encode([self.op, self.name, list(self.args), self.kwargs]))
        if not payload[wire.HEADER.size:].startswith(wire.MAGIC):
            return None
        return hashlib.blake2b(payload, digest_size=20).digest()


def torch_attention_found(calls):
    """The torch_ops probe reports torch's own attention (F.scaled_dot_product_attention,
    nn.MultiheadAttention, ...) reached from the learner's code: names, not values, so no random
    output can show them. The `matches` of every exercise whose spec forbids torch's attention."""
    for call in calls:
        if call.op == "probe" and call.name == "torch_ops" and not call.error:
            found = call.value.get("found") if isinstance(call.value, dict) else None
            if isinstance(found, dict) and found and all(isinstance(n, str) for n in found):
                return True
    return False


def of(exercise):
    """The MISTAKES of an exercise ([] when it has none)."""
    try:
        module = importlib.import_module(f"posgrade.diagnosis.mistakes.{exercise}")
    except ModuleNotFoundError:
        return []
    return list(module.MISTAKES)


def get(exercise, name):
    """The mistake called `name`; "a+b" is the combination of a and b."""
    if "+" in name:
        return combine(exercise, [get(exercise, n) for n in name.split("+")])
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


class Raised(str):
    """An exception class name that also carries the exception's message (.text)."""

    text = ""


_REPLAYS = collections.OrderedDict()  # (module, the call's bytes) -> (value, error, its tensors' bytes)
REPLAYS_KEPT = 20000  # at most this many replays kept ...
REPLAY_BYTES_KEPT = 64 << 20  # ... holding at most this many bytes of tensors
_replay_bytes = [0]


def replay(module, call):
    """Run `call` on module (a mutant) in this process: (value, error class name or ""); the name
    is a Raised whose .text is the exception's message. A replay is a pure function of the module
    and the call (inputs, seeds, device), so the last REPLAYS_KEPT are kept: cases of one run and
    runs of one process (grade-batch, watch, the project's tests) that replay the same call on the
    same mutant share it. Callers read what it returns and never change it."""
    key = _replay_key(module, call)
    if key is not None and key in _REPLAYS:
        _REPLAYS.move_to_end(key)
        return _REPLAYS[key][:2]
    found = _replay(module, call)
    if key is not None:
        size = sum(t.numel() * t.element_size() for t in tensors(found[0]))
        _REPLAYS[key] = (*found, size)
        _replay_bytes[0] += size
        while len(_REPLAYS) > REPLAYS_KEPT or _replay_bytes[0] > REPLAY_BYTES_KEPT:
            _replay_bytes[0] -= _REPLAYS.popitem(last=False)[1][2]
    return found


def _replay_key(module, call):
    """(the module's file, the call's digest), or None when the call has no digest."""
    if call.digest is None:
        return None
    return getattr(module, "__file__", None) or module.__name__, call.digest


def _replay(module, call):
    from posgrade.kit import probes

    args, kwargs = _live(call.args), _live(call.kwargs)
    try:
        with torch.random.fork_rng(devices=[]):
            if call.op == "probe":
                return probes.run(call.name, module, *args, **kwargs), ""
            return getattr(module, call.name)(*args, **kwargs), ""
    except Exception as err:  # a mistake may well make the reference raise
        raised = Raised(type(err).__name__)
        raised.text = str(err)
        return None, raised


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

_EXACT = (str, int, bool, type(None))


def agree(a, b):
    """a and b are the same result up to a loose tolerance (10x the grader's, and 0.1% of the
    result's scale): the same mistake computed another way (float64, another formula) agrees."""
    if type(a) in _EXACT and type(b) in _EXACT:  # the bulk of a probe's facts: names, shapes, flags
        return type(a) is type(b) and a == b
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype or a.device.type != b.device.type:
            return False
        if a.numel() == 0 or torch.equal(a, b):  # the same bits: the common case (a mistake this call does not show)
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
        if call.error != error:
            return False
        # the same exception class is weak evidence (a RuntimeError of shapes is common to many
        # mistakes): where the learner's message is known, the mistake's must read the same
        text = getattr(error, "text", "").strip().splitlines()
        return not (call.message and text and text[0][:60] not in call.message)
    return agree(call.value, value)


# -- diagnosis ----------------------------------------------------------------------------

COMBINATION_SECONDS = 2.0  # the most time a case's search over combinations of mistakes may take


def combine(exercise, parts):
    """One Mistake that is all of `parts` at once (two or three mistakes of an exercise whose
    edits touch different lines): name "a+b", title "A + B", every explanation and hint."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]
    return Mistake(
        "+".join(m.name for m in parts), " + ".join(m.title for m in parts),
        " AND ".join(f"{m.title}: {m.explanation}" for m in parts),
        " ".join(m.hint for m in parts),
        edits=tuple(e for m in parts for e in m.edits), parts=tuple(parts))


def _combinable(exercise, parts):
    """The parts' edits apply together: each `old` occurs once in the reference and still once after
    the other parts' edits (so no two parts edit the same lines)."""
    source = reference_source(exercise)
    for m in parts:
        for old, _ in m.edits:
            if source.count(old) != 1:
                return False
    for m in parts:
        for old, new in m.edits:
            if source.count(old) != 1:
                return False
            source = source.replace(old, new)
    return True


@dataclass
class Diagnosis:
    """What diagnose() found: the mistake (a combined one for several at once), and how the
    search over combinations went (tried, seconds, whether it ran out of time)."""

    mistake: object = None
    tried: int = 0
    seconds: float = 0.0
    exhausted: bool = False
    coerced: str = ""  # "cast to torch.bool": found on the learner's results made comparable first
    also: list = field(default_factory=list)  # other mistakes these calls fit as well (they cannot tell them apart)
    weak: list = field(default_factory=list)  # mistakes that fit every call, on too few bools/ints to name alone


def diagnose(exercise, calls, reference, combinations=True, budget=COMBINATION_SECONDS):
    """The first known mistake of `exercise` that explains `calls` (the failed case's calls to
    the learner's code, with their results), or None. reference is the reference module.

    When no single mistake does, pairs (then triples) of edit mistakes whose edits touch
    different lines are tried, within `budget` seconds: a combined Mistake ("a+b") when one
    reproduces every call."""
    return search(exercise, calls, reference, combinations, budget).mistake


def search(exercise, calls, reference, combinations=True, budget=COMBINATION_SECONDS):
    """diagnose(), with how the search went (a Diagnosis). When nothing explains the results as
    they are, and some of them have another dtype or shape than the reference's, the search runs
    again on them cast (or broadcast) to the reference's (Diagnosis.coerced says so): a float mask
    may also be aligned wrong, a [1, L] result may also hold the wrong values."""
    # a result on the meta device holds no values to diagnose (a CPU-only machine's other device)
    calls = [c for c in calls if c.op in ("call", "probe") and not any(t.is_meta for t in tensors(c.value))]
    moved = sorted({m for c in calls for m in [_moved(c)] if m})
    calls = [_on_cpu(c) for c in calls]
    found = _search(exercise, calls, reference, combinations, budget)
    if moved and found.mistake is not None:
        found.coerced = " and ".join(moved)
    if found.mistake is not None or not calls:
        return found
    fixed, how = [], set()
    for call in calls:
        ref_value, ref_error = replay(reference, call)
        value = call.value
        if not call.error and not ref_error:
            value = _coerced(call.value, ref_value, how)
        fixed.append(Call(call.op, call.name, call.args, call.kwargs, value, call.error, call.message))
    if how:
        again = _search(exercise, fixed, reference, combinations, budget)
        if again.mistake is not None:
            again.coerced = " and ".join(moved + sorted(how))
            return again
    return found


def _on_cpu(call):
    """The call with every tensor on the CPU and every device argument "cpu": mistakes are replayed
    here, in the grader's process, and a mutant's out-of-range index on CUDA is a device-side
    assert that leaves the process's CUDA context unusable for every later case."""
    return Call(call.op, call.name, _cpu(call.args), _cpu(call.kwargs), _cpu(call.value), call.error, call.message)


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu() if obj.device.type not in ("cpu", "meta") else obj
    if isinstance(obj, torch.device):
        return torch.device("cpu")
    if isinstance(obj, str) and obj.split(":")[0] in ("cuda", "mps", "xpu"):
        return "cpu"
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    return obj


def _moved(call):
    """"moved to <device>" when the call's result holds a tensor on another device than its inputs
    (the case failed on that first; its values are diagnosed on the CPU, as every call is)."""
    inputs = expected_devices(call.args, call.kwargs)
    if any(t.device.type not in inputs for t in tensors(call.value)):
        return f"moved to {' or '.join(sorted(inputs))}"
    return ""


def _coerced(value, ref_value, how):
    """value with each tensor cast/broadcast to its reference tensor's dtype and shape where it
    differs and can be (compare.coerce); `how` collects what was done."""
    from posgrade.diagnosis.compare import coerce

    if isinstance(value, torch.Tensor) and isinstance(ref_value, torch.Tensor):
        if value.dtype == ref_value.dtype and value.shape == ref_value.shape:
            return value
        fixed = coerce(value, ref_value)
        if fixed is None:
            return value
        if value.dtype != ref_value.dtype:
            how.add(f"cast to {ref_value.dtype}")
        if value.shape != ref_value.shape:
            how.add(f"broadcast to shape {list(ref_value.shape)}")
        return fixed.contiguous()
    if isinstance(value, dict) and isinstance(ref_value, dict):
        return {k: _coerced(v, ref_value.get(k), how) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and isinstance(ref_value, (list, tuple)) and len(value) == len(ref_value):
        return type(value)(_coerced(v, r, how) for v, r in zip(value, ref_value))
    return value


def _search(exercise, calls, reference, combinations, budget):
    import itertools
    import time

    found = Diagnosis()
    if not calls:
        return found
    expected = None
    shown, partly = [], set()  # edit mistakes that change these calls' results; those reproducing some of them
    for mistake in of(exercise):
        if mistake.matches is not None:
            if found.mistake is not None:
                continue
            try:
                if mistake.matches(calls):
                    found.mistake = mistake
                    return found
            except Exception:  # a predicate meeting an output it did not expect: not this mistake
                pass
            continue
        if expected is None:
            expected = _expected(reference, calls)
        if found.mistake is not None:  # named already: does another edit fit these calls as well?
            if _explains(mutant(exercise, mistake), calls, expected) == "yes":
                found.also.append(mistake)
            continue
        verdict = _explains(mutant(exercise, mistake), calls, expected)
        if verdict == "yes":
            found.mistake = mistake  # the first in catalog order; the others that fit are told as well
            continue
        if verdict == "weak":
            found.weak.append(mistake)
        if verdict in ("partly", "differs", "weak"):
            shown.append(mistake)
        if verdict in ("partly", "weak"):
            partly.add(mistake.name)
    if found.mistake is not None:
        return found
    # a combination must have a part that reproduces some of the learner's results (random or
    # unrelated results reproduce none, and cost no search)
    if not combinations or len(shown) < 2 or not partly:
        return found
    started = time.perf_counter()
    for size in (2, 3):
        for parts in itertools.combinations(shown, size):
            if time.perf_counter() - started > budget:
                found.exhausted = True
                found.seconds = time.perf_counter() - started
                return found
            if not any(m.name in partly for m in parts) or not _combinable(exercise, parts):
                continue
            found.tried += 1
            combined = combine(exercise, parts)
            if _explains(mutant(exercise, combined), calls, expected) == "yes":
                found.mistake = combined
                found.seconds = time.perf_counter() - started
                return found
    found.seconds = time.perf_counter() - started
    return found


def _explains(module, calls, expected):
    """"yes" when module reproduces every call and differs from the reference on one (on floats, an
    exception, or at least MIN_DISCRETE_EVIDENCE bools/ints; "weak" on fewer); "partly" when
    it does not reproduce them all, but some of the learner's results it does reproduce are not the
    reference's (the mistake shows in these calls: a candidate part of a combination); "differs"
    when it differs from the reference without reproducing anything of the learner's that the
    reference does not; "no" when it computes what the reference does."""
    differs, agrees, gain = False, True, False
    discrete, strong = 0, False  # the evidence: elements of bool/int results that tell the two apart, or more
    for call, (ref_value, ref_error, learner_is_ref, ref_name) in zip(calls, expected):
        value, error = replay(module, call)
        versus = _versus_reference(module, call, value, error, ref_value, ref_error, ref_name)
        if versus is None:  # the reference's outcome, bit for bit: what the learner's was compared with already
            agrees = agrees and learner_is_ref
            continue
        same = _outcome_agrees(value, error, call)
        agrees = agrees and same
        departs, real, n = versus
        if departs:
            differs, strong, discrete = True, strong or real, discrete + n
            if not gain and not call.error and not error and not ref_error:
                gain = _gains(value, ref_value, call.value)
            elif not gain and same:
                gain = True
    if not differs:
        return "no"
    if agrees:
        # a few bools or integers a random answer matches by chance (causal_mask(1, 1) has one element):
        # "weak", named on such a case only when other cases of the run showed the mistake for sure
        return "yes" if strong or discrete >= MIN_DISCRETE_EVIDENCE else "weak"
    return "partly" if gain else "differs"


MIN_DISCRETE_EVIDENCE = 6  # elements of bool/int results that must tell a mistake from the reference
VERSUS_KEPT = 50_000  # mutant-versus-reference comparisons kept (a few ints each)
_VERSUS = collections.OrderedDict()  # (mutant, call, reference) -> _versus_reference()


def _expected(reference, calls):
    """Per call: the reference's (value, error), and whether the learner's outcome agrees with it."""
    out = []
    for call in calls:
        value, error = replay(reference, call)
        out.append((value, error, _outcome_agrees(value, error, call), getattr(reference, "__file__", None)))
    return out


def _versus_reference(module, call, value, error, ref_value, ref_error, ref_name):
    """How a mutant's outcome of `call` stands to the reference's: None when they are the same bit
    for bit, else (departs, real, n): whether it departs beyond agree()'s tolerance, and _telling's
    evidence when it does. A pure function of the mutant, the reference and the call, so kept like
    the replays (the same case fails alike in many files; most mutants do not touch most calls)."""
    key = _replay_key(module, call) if ref_name else None
    if key is not None:
        key = (key, ref_name)
        if key in _VERSUS:
            _VERSUS.move_to_end(key)
            return _VERSUS[key]
    if _identical(error, ref_error) and _identical(value, ref_value):
        found = None
    elif not (error == ref_error and (error or agree(value, ref_value))):
        found = (True, True, 0) if error or ref_error else (True, *_telling(value, ref_value)[::-1])
    else:
        found = (False, False, 0)
    if key is not None:
        _VERSUS[key] = found
        while len(_VERSUS) > VERSUS_KEPT:
            _VERSUS.popitem(last=False)
    return found


def _identical(a, b):
    """a and b hold the same bits (tensors: dtype, shape, device and values; NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.dtype != b.dtype \
                or a.shape != b.shape or a.device != b.device or a.layout != b.layout:
            return False
        return bool(torch.equal(a, b)) or (a.is_floating_point() and bool(torch.equal(a.nan_to_num(), b.nan_to_num()))
                                           and bool(torch.equal(a.isnan(), b.isnan())))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, Raised):
        return a == b and getattr(a, "text", None) == getattr(b, "text", None)
    try:
        return bool(a == b)
    except Exception:
        return False


def _telling(value, ref_value):
    """(how many elements of bool/int tensors differ between value and ref_value, whether they differ
    otherwise: floats, shapes, dtypes, other types)."""
    if isinstance(value, torch.Tensor) and isinstance(ref_value, torch.Tensor):
        if value.shape != ref_value.shape or value.dtype != ref_value.dtype:
            return 0, True
        if value.is_floating_point() or value.is_complex():
            return 0, not agree(value, ref_value)
        return int((value.detach().cpu() != ref_value.detach().cpu()).sum()), False
    if isinstance(value, dict) and isinstance(ref_value, dict) and value.keys() == ref_value.keys():
        parts = [_telling(value[k], ref_value[k]) for k in value]
    elif isinstance(value, (list, tuple)) and isinstance(ref_value, (list, tuple)) and len(value) == len(ref_value):
        parts = [_telling(a, b) for a, b in zip(value, ref_value)]
    else:
        return 0, not agree(value, ref_value)
    return sum(n for n, _ in parts), any(real for _, real in parts)


def _gains(value, ref_value, learner_value):
    """Some element of the learner's result equals value's and not ref_value's (tensors anywhere in
    the results, of one shape)."""
    if isinstance(learner_value, torch.Tensor):
        if not (isinstance(value, torch.Tensor) and isinstance(ref_value, torch.Tensor)
                and value.shape == ref_value.shape == learner_value.shape and value.numel()):
            return False
        mine, theirs = _close(learner_value, value), _close(learner_value, ref_value)
        return bool((mine & ~theirs).any())
    if isinstance(learner_value, dict) and isinstance(value, dict) and isinstance(ref_value, dict):
        return any(_gains(value.get(k), ref_value.get(k), v) for k, v in learner_value.items())
    if isinstance(learner_value, (list, tuple)) and isinstance(value, (list, tuple)) \
            and isinstance(ref_value, (list, tuple)) and len(value) == len(ref_value) == len(learner_value):
        return any(_gains(a, b, c) for a, b, c in zip(value, ref_value, learner_value))
    return False


def _close(a, b):
    """Elementwise agree(): the loose tolerance of agree, one bool per element."""
    if a.dtype != b.dtype or not (a.is_floating_point() or a.is_complex()):
        return a.detach().cpu() == b.detach().cpu()
    x, y = a.detach().cpu().to(torch.complex128 if a.is_complex() else torch.float64), \
        b.detach().cpu().to(torch.complex128 if b.is_complex() else torch.float64)
    rtol, atol = tolerance(a.dtype, a.device.type)
    finite = y[torch.isfinite(y)]
    scale = float(finite.abs().max()) if finite.numel() else 0.0
    ok = (x - y).abs() <= max(10 * atol, 1e-3 * scale) + 10 * rtol * y.abs()
    return ok | ((x == y) & ~torch.isfinite(y)) | (torch.isnan(x) & torch.isnan(y))
