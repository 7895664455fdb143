"""The runner: a worker process for learner code, the proxy that reaches it, and `grade()`.

Layers: the CLI calls `start_worker()` first (before anything imports torch, so the worker's
torch import overlaps the grader's), then `grade()`, which runs the hidden pytest cases in
this process. Cases call learner code through `Learner`, which sends each call to the
worker under a time and memory limit and gives back plain tensors, or raises LearnerError.
Nothing learner code does can reach the objects that decide verdicts.
"""

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from posgrade.kit import catalog

STARTUP_SECONDS = 120.0  # torch's first import on a cold disk can be slow
REPLY_CAP_BYTES = 1 << 30  # a reply larger than this is "huge output"


@dataclass
class Limits:
    """Limits on learner code, per call; the README documents the defaults."""

    seconds: float = 10.0  # wall time of one call
    memory_mb: int = 4096  # resident memory of the worker above its idle size
    file_mb: int = 64  # largest file (or redirected output) the worker may write
    stops_per_exercise: int = 2  # after this many time-outs or crashes, later calls fail at once


class LearnerError(Exception):
    """Learner code raised, crashed, hung, or could not be imported."""

    def __init__(self, kind, summary, detail="", output="", exc_type=""):
        super().__init__(summary)
        self.kind = kind  # not-implemented | exception | import | timeout | crash | memory | output
        self.exc_type = exc_type  # the learner's exception class name, for kind "exception"
        self.summary = summary
        self.detail = detail
        self.output = output

    def explain(self):
        parts = [self.summary]
        if self.detail:
            parts.append(self.detail)
        if self.output:
            parts.append("your code printed:\n" + _indent(self.output))
        return "\n".join(parts)


def _indent(text, by="  "):
    return "\n".join(by + line for line in text.splitlines())


class Worker:
    """One worker process; restarted lazily after a crash, time-out or memory overrun."""

    def __init__(self, workspace, limits=None, cuda=True):
        self.workspace = str(Path(workspace).resolve())
        self.limits = limits or Limits()
        self.cuda = cuda
        self.proc = None
        self._ready = False
        self._stderr = None
        self._copy = None
        self.started = 0  # how many processes this handle has started
        self.start()

    # -- process management -------------------------------------------------------------
    def _private_copy(self):
        """A fresh copy of the workspace's .py files for the worker: learner code never learns
        where the workspace is, so it cannot write there (the grader only reads the workspace)."""
        if self._copy is not None:
            self._copy.cleanup()
        self._copy = tempfile.TemporaryDirectory(prefix="posgrade-")
        code = Path(self._copy.name) / "workspace"
        run = Path(self._copy.name) / "run"
        code.mkdir()
        run.mkdir()
        self._sync(code)
        return code, run

    def _sync(self, code):
        """Make the folder `code` hold exactly the workspace's .py files, as they are now."""
        current = {p.name for p in Path(self.workspace).glob("*.py")}
        for old in code.glob("*.py"):
            if old.name not in current:
                old.unlink()
        for name in current:
            shutil.copyfile(Path(self.workspace) / name, code / name)

    def refresh(self):
        """Copy the workspace's files afresh into a worker that has run nothing yet (posgrade watch
        keeps one started, torch imported, and hands it the files as saved when they change)."""
        if self.proc is None or self.requests:
            raise RuntimeError("refresh() needs a started worker that has not run learner code")
        self._sync(Path(self._copy.name) / "workspace")

    def start(self):
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        code, run = self._private_copy()
        limits = {"file_bytes": self.limits.file_mb << 20}
        if not self.cuda:
            limits["address_space_bytes"] = self.limits.memory_mb << 20
        env = {k: v for k, v in os.environ.items() if not k.startswith(("POSGRADE_", "PYTEST_"))}
        env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONFAULTHANDLER="1")
        env.pop("PYTHONSTARTUP", None)
        if not self.cuda:
            env["CUDA_VISIBLE_DEVICES"] = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posgrade.grading.worker", str(to_worker_r), str(from_worker_w),
             str(code), json.dumps(limits)],
            pass_fds=(to_worker_r, from_worker_w),
            stdin=subprocess.DEVNULL,
            stdout=self._stderr,
            stderr=self._stderr,
            cwd=run,  # relative paths in learner code land in a scratch folder
            env=env,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._w, self._r = to_worker_w, from_worker_r
        self._ready = False
        self._baseline_rss = None
        self.started += 1
        self.requests = 0  # requests sent to this process

    def stop(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None

    def close(self):
        self.stop()
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def _crash_text(self):
        """The tail of what the worker wrote to stderr (a faulthandler dump after a segfault)."""
        try:
            self._stderr.seek(0, os.SEEK_END)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - 3000))
            text = self._stderr.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return "\n".join(lines[-12:])

    def _rss(self):
        try:
            with open(f"/proc/{self.proc.pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    # -- messages -------------------------------------------------------------------------
    def _died(self, what):
        code = None
        if self.proc is not None:
            try:  # the pipe closes a moment before the process is reaped
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        crash = self._crash_text()
        self.stop()
        if code is not None and code < 0:
            sig = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else -code
            summary = f"the worker running your code was killed by signal {sig} {what}"
        elif code is not None:
            summary = f"your code ended the worker process (exit code {code}) {what}"
        else:
            summary = f"the worker running your code stopped answering {what}"
        if code != 0 and "Segmentation fault" in crash:
            summary = f"your code crashed the worker (segmentation fault) {what}"
        return LearnerError("crash", summary, crash)

    def _read(self, deadline, what):
        """Read one message, enforcing the deadline and the memory limit."""
        from posgrade.kit import wire

        buf = bytearray()
        need = wire.HEADER.size
        header_done = False
        while True:
            while len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                ready, _, _ = select.select([self._r], [], [], min(left, 0.05))
                if not ready:
                    self._check_memory(what)
                    if self.proc.poll() is not None:
                        raise self._died(what)
                    continue
                chunk = os.read(self._r, min(1 << 22, need - len(buf)))
                if not chunk:
                    raise self._died(what)
                buf += chunk
            if header_done:
                return wire.loads(bytes(buf[wire.HEADER.size :]))
            (size,) = wire.HEADER.unpack(bytes(buf[: wire.HEADER.size]))
            if size > REPLY_CAP_BYTES:
                self.stop()
                raise LearnerError("output", f"your code returned more than {REPLY_CAP_BYTES >> 20} MB {what}")
            need += size
            header_done = True

    def _check_memory(self, what):
        rss = self._rss()
        if rss is None or not self._ready:
            return
        if self._baseline_rss is None:
            self._baseline_rss = rss
        if rss - self._baseline_rss > self.limits.memory_mb << 20:
            self.stop()
            raise LearnerError(
                "memory", f"your code used more than {self.limits.memory_mb} MB of memory {what}"
            )

    def _wait_ready(self):
        if self.proc is None:
            self.start()
        if not self._ready:
            try:
                self._read(time.monotonic() + STARTUP_SECONDS, "while starting")
            except TimeoutError:
                self.stop()
                raise LearnerError("crash", "the worker did not start in time") from None
            self._ready = True
            self._baseline_rss = self._rss()

    def _write(self, data, deadline, what):
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            _, ready, _ = select.select([], [self._w], [], min(left, 0.05))
            if ready:
                try:
                    view = view[os.write(self._w, view[: 1 << 16]) :]
                except BrokenPipeError:
                    raise self._died(what) from None
            elif self.proc.poll() is not None:
                raise self._died(what)

    def request(self, msg, what=""):
        """Send one request; return the worker's reply dict. Raises LearnerError."""
        from posgrade.kit import wire

        self._wait_ready()
        self.requests += 1
        deadline = time.monotonic() + self.limits.seconds
        try:
            self._write(wire.dumps(msg), deadline, what)
            return self._read(deadline, what)
        except TimeoutError:
            self.stop()
            raise LearnerError(
                "timeout", f"your code took longer than {self.limits.seconds:g} s {what} and was stopped"
            ) from None


def start_worker(workspace, limits=None, device="auto"):
    """Start the worker now, before torch is imported here, so the two imports overlap.

    Without an NVIDIA device node (checked without importing torch) the worker also gets an
    address-space limit; with CUDA that limit would break CUDA's large virtual reservations.
    """
    cuda = device != "cpu" and os.path.exists("/dev/nvidiactl")
    return Worker(workspace, limits, cuda=cuda)


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

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, args, kwargs)

    def probe(self, probe, **kwargs):
        target = kwargs.get("cls", probe)  # name what the learner wrote, not the probe
        return self._logged("probe", probe, (), kwargs, lambda: self._send(
            {"op": "probe", "module": self._exercise, "probe": probe, "kwargs": kwargs}, f"in {target}"))

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
        return self._logged("call", name, args, kwargs, lambda: self._send(
            {"op": "call", "module": self._exercise, "attr": name, "args": list(args), "kwargs": kwargs},
            f"in {name}()"))

    def _logged(self, op, name, args, kwargs, send):
        """send(), recording the call and its outcome for posgrade.diagnosis.mistakes.diagnose."""
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
            mutated = reply.get("mutated") or []
            if mutated:
                names = ", ".join(f"argument {m + 1}" if isinstance(m, int) else f"`{m}`" for m in mutated)
                raise LearnerError("exception", f"{what.removeprefix('in ').strip()} modified its input "
                                   f"({names}) in place; return a new tensor instead")
            value = wire.decode(reply.get("value"))
            _check_devices(args, kwargs, value, what)
            return value
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


def _tensors(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _check_devices(args, kwargs, value, what):
    """A result must be on the device of the call's tensors (or its `device=` argument; the CPU when
    it has neither), before any case does arithmetic on it: a case comparing a meta or CUDA tensor
    with a CPU one would otherwise end in a confusing error of the grader's own."""
    import torch

    from posgrade.diagnosis.compare import fail

    expected = {t.device.type for t in _tensors([args, kwargs])}
    device = kwargs.get("device")
    if device is not None:
        expected.add(torch.device(device).type)
    expected = expected or {"cpu"}
    for t in _tensors(value):
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


@dataclass
class GradeRequest:
    """What to grade and how; plain data so the CLI and tests build it the same way."""

    workspace: str
    exercises: list = field(default_factory=list)
    seed: int = 0
    device: str = "auto"  # cpu | cuda | all | auto
    extra_cases: list = field(default_factory=list)  # more case files to run (instructor cases)
    figures: bool = False  # keep 2-D slices of mismatched outputs (CaseResult.figure) for an HTML report


def grade(request, worker=None):
    """Run the hidden cases of request.exercises against the workspace; return a RunResult."""
    from posgrade.grading import plugin

    own = worker is None
    if own:
        worker = start_worker(request.workspace, device=request.device)
    try:
        return plugin.run_cases(request, worker)
    finally:
        if own:
            worker.close()


def case_files(names):
    here = Path(__file__).parent / "cases"
    return [str(here / catalog.get(n).cases) for n in names]
