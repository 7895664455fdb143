"""The grading session: what `check`, `watch` and `grade-batch` all call to grade a workspace.

    session = GradingSession(workspace, Limits(seconds=10), device="cpu")   # the worker starts now
    result = session.grade(GradeRequest(workspace, ["rope"], seed=7))        # cases run here: a RunResult
    session.close()

The worker is started when the session is made, before torch is imported in this process, so the
two imports overlap. `grade()` runs the hidden cases (plugin.run_cases) against that worker and
ends it; with `standby=True` (posgrade watch, grade-batch, the project's tests) a fresh worker is
started at once for the next run, and the next `grade()` first hands it the files of its workspace
as they are now (`refresh=True` for the same workspace; another workspace is always copied in).
While `stop_signals` is on, SIGTERM (a CI's time-out) and SIGINT end the run early; the result
then carries RunResult.error, so it is reported as an error, never as a partial score.
"""

import signal
from dataclasses import dataclass, field
from pathlib import Path

from posgrade.grading.process import STOP, LearnerError, Limits, raise_if_stopped, start_worker  # noqa: F401


@dataclass
class GradeRequest:
    """What to grade and how; plain data so the CLI and tests build it the same way."""

    workspace: str
    exercises: list = field(default_factory=list)
    seed: int = 0
    device: str = "auto"  # cpu | cuda | all | auto
    extra_cases: list = field(default_factory=list)  # more case files to run (instructor cases)
    figures: bool = False  # keep 2-D slices of mismatched outputs (CaseResult.figure) for an HTML report


class Stopped(Exception):
    """Grading was stopped by a signal before every case ran; `.result` holds what ran, or None."""

    def __init__(self, signal_name, result=None):
        super().__init__(signal_name)
        self.signal = signal_name
        self.result = result


class StopSignals:
    """While grading (`with StopSignals(True):`), SIGTERM and SIGINT end the run, and the run is then
    reported as stopped (an error), not as a partial score. The handler only records the signal:
    the grader stops at its next wait on the worker or between cases (process.raise_if_stopped),
    within 50 ms while a learner's call runs, after the import under way while torch or pytest
    load. Nested uses share the outer one's handlers (check installs them before it writes its
    placeholder results; the session's grade() runs inside)."""

    def __init__(self, enabled):
        self.enabled = enabled
        self._saved = {}
        self.name = None  # the signal that stopped the run, once the block is left

    @property
    def signal(self):
        return self.name or STOP.signal

    def _handle(self, signum, frame):
        STOP.signal = signal.Signals(signum).name

    def __enter__(self):
        STOP.depth += 1
        if self.enabled and not STOP.handled:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._saved[sig] = signal.signal(sig, self._handle)
            STOP.handled = True
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        if self._saved:
            STOP.handled = False
        STOP.depth -= 1
        self.name = STOP.signal
        if STOP.depth == 0:
            STOP.signal = None  # asked for during this run: the next starts afresh
        return False


class GradingSession:
    """A worker started ahead of need, and the grading runs that use it (one worker per run)."""

    def __init__(self, workspace, limits=None, device="auto", fork_server=False):
        """fork_server: False (each worker imports torch anew), True (a zygote of this session's own),
        or a zygote.Zygote the caller keeps and closes."""
        self.workspace = workspace
        self.limits = limits or Limits()
        self.device = device
        # many runs ahead (grade-batch, watch, tests): CPU workers are forked from a zygote that
        # imported torch once, instead of each importing it anew (zygote.py)
        self._own_zygote = fork_server is True
        self.zygote = new_zygote() if fork_server is True else (fork_server or None)  # or one the caller keeps
        self.worker = self._start(workspace)

    def _start(self, workspace):
        return start_worker(workspace, self.limits, device=self.device, zygote=self.zygote)

    def grade(self, request, stop_signals=False, refresh=False, standby=False):
        """Run request's cases on the session's worker; a RunResult. Raises Stopped when a signal
        ended the run (with stop_signals), ValueError for a device that is not there."""
        worker = self.worker or self._start(request.workspace)
        self.worker = None
        if worker.workspace != str(Path(request.workspace).resolve()):
            worker.retarget(request.workspace)  # a standby worker serves the next workspace
        elif refresh:
            worker.refresh()
        stopped = StopSignals(stop_signals)
        result = None
        try:
            with stopped:  # the imports too: a CI's SIGTERM during torch's import still ends as an error result
                from posgrade.grading import plugin  # torch and pytest: imported while the worker starts

                raise_if_stopped()
                result = plugin.run_cases(request, worker)
        except KeyboardInterrupt:
            if not stopped.signal:
                raise
        finally:
            worker.close()
        if standby:  # the next run's worker imports torch meanwhile (while the learner edits, say)
            self.worker = self._start(request.workspace)
        if stopped.signal:
            raise Stopped(stopped.signal, result)
        return result

    def warm(self):
        """Wait until the session's next worker has imported torch (and the zygote with it), so that
        start-up never counts in the first case's time (grade-batch waits the same way)."""
        if self.worker is not None:
            self.worker._wait_ready()

    def close(self):
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if self.zygote is not None and self._own_zygote:
            self.zygote.close()
        self.zygote = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def new_zygote():
    """A fork server for CPU workers (zygote.py), started with the worker's built environment."""
    import tempfile

    from posgrade.grading import sandbox
    from posgrade.grading.zygote import Zygote

    return Zygote(env=sandbox.environment(tempfile.gettempdir(), cuda=False))
