"""The worker process for learner code, seen from the grader: start it, send it requests, enforce limits.

Worker starts `python -m posgrade.grading.worker` on a private copy of the workspace and sends it one
request at a time under a time and memory limit; a crash, hang or overrun becomes a LearnerError and a
fresh process for the next request. Nothing learner code does can reach the objects that decide verdicts.
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

from posgrade.grading import sandbox


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


class _StopRequest:
    """A stop asked for by a signal (session.StopSignals), honoured where the grader waits on the
    worker and between cases, never in the middle of an import: a KeyboardInterrupt raised from a
    signal handler can land anywhere, and one that lands inside exec() (dataclasses and namedtuples
    exec their methods while torch imports) makes CPython exit by SIGINT even once it is caught."""

    signal = None  # "SIGTERM" once asked for
    depth = 0  # StopSignals blocks entered
    handled = False  # whether one of them holds the signal handlers


STOP = _StopRequest()


def raise_if_stopped():
    """KeyboardInterrupt when a stop was asked for (pytest ends the run on it; the session turns it
    into Stopped)."""
    if STOP.signal:
        raise KeyboardInterrupt(STOP.signal)


def _indent(text, by="  "):
    return "\n".join(by + line for line in text.splitlines())


class Worker:
    """One worker process; restarted lazily after a crash, time-out or memory overrun."""

    def __init__(self, workspace, limits=None, cuda=True, zygote=None):
        self.workspace = str(Path(workspace).resolve())
        self.limits = limits or Limits()
        self.cuda = cuda
        self.zygote = zygote  # a zygote.Zygote to fork the process from, or None to start it anew
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
        """Make the folder `code` hold exactly the workspace's .py files, as they are now, plus
        <name>.py built from each <name>.ipynb that has no .py beside it (kit.notebooks: its code
        cells, read here, never executed here)."""
        from posgrade.kit import notebooks

        current = {p.name for p in Path(self.workspace).glob("*.py")}
        built = {f"{stem}.py": path for stem, path in notebooks.notebook_only(self.workspace).items()}
        for old in code.glob("*.py"):
            if old.name not in current and old.name not in built:
                old.unlink()
        for name in current:
            shutil.copyfile(Path(self.workspace) / name, code / name)
        for name, path in built.items():
            (code / name).write_text(notebooks.module_text(path), encoding="utf-8")

    def refresh(self):
        """Copy the workspace's files afresh into a worker that has run nothing yet (posgrade watch
        keeps one started, torch imported, and hands it the files as saved when they change)."""
        if self.proc is None or self.requests:
            raise RuntimeError("refresh() needs a started worker that has not run learner code")
        self._sync(Path(self._copy.name) / "workspace")

    def retarget(self, workspace):
        """Point a worker that has run nothing yet at another workspace and copy its files in: a
        standby worker (torch already imported) then serves the next workspace, as in grade-batch
        and the project's own tests, instead of a fresh process importing torch again."""
        if self.proc is None or self.requests:
            raise RuntimeError("retarget() needs a started worker that has not run learner code")
        self.workspace = str(Path(workspace).resolve())
        self.refresh()

    def start(self):
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self._stderr = tempfile.TemporaryFile()
        code, run = self._private_copy()
        limits = {"file_bytes": self.limits.file_mb << 20}
        if not self.cuda:
            limits["address_space_bytes"] = self.limits.memory_mb << 20
        scratch = self._copy.name
        os.mkdir(Path(scratch) / "tmp")
        # built, not inherited: no token or CI variable of the grader's reaches learner code
        env = sandbox.environment(scratch, self.cuda)
        limits["sandbox"] = sandbox.plan(scratch, self.workspace, self.cuda)
        sandbox.prepare_scratch(limits["sandbox"])  # as root: the worker's uid owns this folder, nothing else
        argv = [str(to_worker_r), str(from_worker_w), str(code), json.dumps(limits)]
        self.proc = None
        if self.zygote is not None and not self.cuda:  # forked with torch imported: milliseconds, not a second
            self.proc = self.zygote.spawn(argv, env, run, (to_worker_r, from_worker_w), self._stderr.fileno())
        self.proc = self.proc or subprocess.Popen(
            [sys.executable, "-m", "posgrade.grading.worker", *argv],
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
        self.pid = self.proc.pid  # the worker's own pid once it says "ready" (it runs in a pid namespace)
        self.sandbox = None  # what the worker reports of its sandbox (sandbox.restrict)
        self.started += 1
        self.requests = 0  # requests sent to this process

    def stop(self):
        if self.proc is None:
            return
        for kill, pid in ((os.killpg, self.proc.pid), (os.kill, self.pid)):
            try:  # the group, and the worker itself should learner code have left the group
                kill(pid, signal.SIGKILL)
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
            with open(f"/proc/{self.pid}/statm") as f:
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
                raise_if_stopped()
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
                try:
                    return wire.loads(memoryview(buf)[wire.HEADER.size :])
                except Exception:  # ValueError, or UnpicklingError for a crafted pickle
                    self.stop()
                    raise LearnerError(
                        "crash", f"your code wrote to the grader's channel something that is not a reply {what}"
                    ) from None
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
                hello = self._read(time.monotonic() + STARTUP_SECONDS, "while starting")
                self.pid = int(hello.get("pid") or self.proc.pid)
                self.sandbox = hello.get("sandbox")
            except TimeoutError:
                self.stop()
                raise LearnerError("crash", "the worker did not start in time") from None
            self._ready = True
            self._baseline_rss = self._rss()

    def _write(self, data, deadline, what):
        view = memoryview(data)
        while view:
            raise_if_stopped()
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


def start_worker(workspace, limits=None, device="auto", zygote=None):
    """Start the worker now, before torch is imported here, so the two imports overlap (or fork it
    from `zygote`, a zygote.Zygote, when given and the worker is CPU-only).

    Without an NVIDIA device node (checked without importing torch) the worker also gets an
    address-space limit; with CUDA that limit would break CUDA's large virtual reservations.
    """
    cuda = device != "cpu" and os.path.exists("/dev/nvidiactl")
    return Worker(workspace, limits, cuda=cuda, zygote=zygote)


