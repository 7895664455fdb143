"""The learner's module as the hidden cases see it (Learner), and the reference beside it (Reference).

Cases call learner code through `Learner`, which sends each call to the worker process (process.py)
and gives back plain tensors, or raises LearnerError; `Reference` runs the reference solution in this
process with the same interface.
"""

import time

from posgrade.grading.process import LearnerError, _indent  # noqa: F401  (LearnerError: the cases' import)

class Learner:
    """The learner's module for one exercise, as seen from the grader.

    `learner.sinusoidal_table(4, 6)` runs the learner's function in the worker and returns
    its result (tensors, numbers, tuples; anything else as wire.Opaque). `learner.probe(
    "module", ...)` runs one of posgrade.kit.probes on the learner's module in the worker.
    """

    def __init__(self, worker, exercise):
        self._worker = worker
        self._exercise = exercise
        self._import_error = None
        self._stops = []  # LearnerErrors that stopped the worker (time-outs, crashes)
        self._imported_by = None  # the worker start count in which the module was imported
        self._log = []  # mistakes.Call for each call of the current case (plugin.py clears it)
        self._printed = []  # what the learner's code printed in calls that returned, this case (plugin.py clears it)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def probe(self, probe, **kwargs):
        target = kwargs.get("cls", probe)  # name what the learner wrote, not the probe
        what = f"in {target}"
        return self._logged("probe", probe, (), kwargs, what, lambda: self._send(
            {"op": "probe", "module": self._exercise, "probe": probe, "kwargs": kwargs}, what))

    def speed(self, repeat=2, **target):
        """(learner seconds, reference seconds) for `repeat` runs of target (see
        probes.timed_target), both run in the worker and timed here, where learner code cannot
        touch the clock; the best of two alternating rounds each."""
        from posgrade.kit import wire

        self._imported()
        name = target.get("attr") or target.get("cls")
        best = {}
        for which in ("reference", "learner", "reference", "learner"):
            msg = {"op": "speed", "module": self._exercise, "which": which, "repeat": repeat,
                   "kwargs": wire.encode(target)}
            t0 = time.perf_counter()
            reply = self._worker.request(msg, f"in {name} on a large input")
            elapsed = time.perf_counter() - t0
            if not reply.get("ok"):
                raise self._error(reply, f"in {name}")
            best[which] = min(best.get(which, elapsed), elapsed)
            if which == "learner" and elapsed > self._worker.limits.seconds / 4:
                break  # clearly slow already: no second round
        return best["learner"], best["reference"]

    def _call(self, name, args, kwargs):
        what = f"in {name}()"
        return self._logged("call", name, args, kwargs, what, lambda: self._send(
            {"op": "call", "module": self._exercise, "attr": name, "args": list(args), "kwargs": kwargs}, what))

    def _logged(self, op, name, args, kwargs, what, send):
        """send(), recording the call and its outcome for posgrade.diagnosis.mistakes.diagnose; then
        the result's device is checked (after the recording: a result on the wrong device is still
        diagnosed on its values)."""
        from posgrade.diagnosis.mistakes import Call

        call = Call(op, name, tuple(args), dict(kwargs))
        try:
            call.value = send()
        except LearnerError as err:
            if err.kind == "exception" and err.exc_type:
                call.error = err.exc_type
                self._log.append(call)
            raise
        self._log.append(call)
        _check_devices(args, kwargs, call.value, what)
        return call.value

    def _send(self, msg, what):
        from posgrade.kit import wire

        if self._import_error is not None:  # before the stop count: the import failure is the news
            raise self._import_error
        if len(self._stops) >= self._worker.limits.stops_per_exercise:
            last = self._stops[-1]
            raise LearnerError(last.kind, f"not run: your {self._exercise}.py already stopped the worker "
                               f"{len(self._stops)} times (last: {last.summary})")
        self._imported()
        args, kwargs = msg.get("args", []), msg.get("kwargs", {})
        msg["args"], msg["kwargs"] = wire.encode(args), wire.encode(kwargs)
        try:
            reply = self._worker.request(msg, what)
        except LearnerError as err:
            if err.kind in ("timeout", "crash", "memory"):
                self._stops.append(err)
            raise
        if reply.get("ok"):
            if reply.get("stdout"):
                self._printed.append(reply["stdout"])
            mutated = reply.get("mutated") or []
            if mutated:
                names = ", ".join(f"argument {m + 1}" if isinstance(m, int) else f"`{m}`" for m in mutated)
                raise LearnerError("exception", f"{what.removeprefix('in ').strip()} modified its input "
                                   f"({names}) in place; return a new tensor instead")
            return wire.decode(reply.get("value"))
        raise self._error(reply, what)

    def _imported(self):
        """Import the learner's file once per worker process, so that a file that hangs or ends
        the process while importing is named as such, once, instead of failing every call;
        a file that failed to import fails every later call at once."""
        if self._import_error is not None:
            raise self._import_error
        if self._imported_by == self._worker.started and self._worker.proc is not None:
            return
        try:
            reply = self._worker.request({"op": "import", "module": self._exercise}, "while importing it")
        except LearnerError as err:
            self._import_error = LearnerError("import", f"your {self._exercise}.py could not be imported: "
                                              f"{err.summary}", err.detail, err.output)
            raise self._import_error from None
        if not reply.get("ok"):
            raise self._error(reply, "while importing it")
        self._imported_by = self._worker.started

    def _error(self, reply, what):
        err = reply.get("error", {})
        kind, etype, message = err.get("where"), err.get("type"), err.get("message", "")
        output = reply.get("stdout", "")
        if kind == "request":  # the worker could not read the grader's request (CUDA unusable there, say)
            if err.get("learner_ran"):
                return LearnerError("crash", f"the worker could not read the case's inputs {what}, after your "
                                    f"code had run in it ({etype}: {message[:300]}); does your code change "
                                    f"torch or the process when imported?", "", output)
            return LearnerError("internal", f"grader error (please report it): the worker could not read a "
                                f"request {what}: {etype}: {message[:300]}", "", output)
        if kind == "import":
            e = LearnerError("import", f"your {self._exercise}.py could not be imported: {etype}: {message}",
                             err.get("traceback", ""), output)
            if etype == "ModuleNotFoundError" and self._exercise in message:
                e.summary = f"no {self._exercise}.py in the workspace (run `posgrade reset {self._exercise}`)"
            self._import_error = e  # the same file fails the same way for every later case
            return e
        if etype == "SystemExit":
            return LearnerError("exception", f"your code called sys.exit({message}) {what}; return a value or "
                                "raise an exception instead", err.get("traceback", ""), output, etype)
        if etype == "MemoryError" or "can't allocate memory" in message:
            return LearnerError("memory", f"your code ran out of memory {what} (the limit is "
                                f"{self._worker.limits.memory_mb} MB): {message[:200]}", "", output, etype)
        if etype == "NotImplementedError" and err.get("own", True):  # a stub's raise, not one of torch's
            source = err.get("file", "")
            if source and source != f"{self._exercise}.py":  # e.g. attention.py calling a stub rope.py
                return LearnerError("not-implemented", f"not implemented yet: {what.removeprefix('in ')} uses "
                                    f"{err.get('function')}() from your {source}, which still raises "
                                    f"NotImplementedError; finish that exercise first", "", output)
            return LearnerError("not-implemented", f"not implemented yet: {what.removeprefix('in ')} still "
                                "raises NotImplementedError", "", output)
        detail = err.get("traceback", "")
        if "CUDA" in message or "cuda" in message:
            if "device-side assert" in message or "CUDA error" in message:
                self._worker.stop()  # a CUDA error poisons the context: start afresh
            else:
                detail += ("\nhint: does your code ask for CUDA itself (a hard-coded .cuda() or device="
                           "'cuda')? Create tensors on the input's device instead (x.device).")
        return LearnerError("exception", f"{etype} {what}: {message}", detail.strip("\n"), output, etype)


def _check_devices(args, kwargs, value, what):
    """A result must be on the device of the call's tensors (or its `device=` argument; the CPU when
    it has neither), before any case does arithmetic on it: a case comparing a meta or CUDA tensor
    with a CPU one would otherwise end in a confusing error of the grader's own."""
    from posgrade.diagnosis.compare import expected_devices, fail, tensors

    expected = expected_devices(args, kwargs)
    for t in tensors(value):
        if t.device.type not in expected:
            want = " or ".join(sorted(expected))
            fail(f"{what.removeprefix('in ').strip()} returned a tensor on {t.device}, expected it on {want}: "
                 f"create tensors on the input's device (x.device), not a fixed one")


class Reference:
    """The reference solution of one exercise, run in this process with the same interface."""

    def __init__(self, exercise):
        import importlib

        self._module = importlib.import_module(f"posgrade.solutions.{exercise}")

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._module, name)

    def probe(self, probe, **kwargs):
        from posgrade.kit import probes

        return probes.run(probe, self._module, **kwargs)
