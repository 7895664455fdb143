"""`posgrade watch`: re-grade whenever a workspace file is saved, and say what changed.

The loop polls the workspace's .py files (size and modification time, every `interval`
seconds; no extra dependency). A worker is always started ahead of need, so its torch
import is done while the learner edits: when a file changes, that standby worker gets the
saved files (Worker.refresh), grades them in this process (torch and pytest already
imported here), and is then replaced by a fresh one, so learner code never carries state
from one run into the next. The seed stays the same for the whole session, so a change in
the verdict comes from the code, not from new random inputs.

Without exercise names it follows the learner: the first exercise not yet passed, and the
next one once that passes.
"""

import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from posgrade.grading.session import GradeRequest, GradingSession, Limits
from posgrade.kit import catalog, state
from posgrade.loop.check import CheckError, open_workspace, require_files, validate_names
from posgrade.reporting import terminal as report


@dataclass
class Session:
    workspace: Path
    names: list  # the exercises to grade; empty = follow the learner's progress
    seed: int
    device: str = "auto"
    timeout: float = 10.0
    interval: float = 0.3
    save: bool = True
    unicode: bool = True
    runs: int = 0
    last: object = None  # the previous RunResult
    _stop: bool = field(default=False, repr=False)


def prepare(names, all_, device, seed, timeout, interval, save, workspace, unicode=True):
    """A watch Session from the command line's values; CheckError for a usage problem."""
    validate_names(names, all_)
    ws, progress = open_workspace(workspace)
    require_files(ws, names or catalog.names(), progress)
    try:
        from posgrade.grading import plugin

        plugin.resolve_devices(device)
    except ValueError as err:
        raise CheckError(str(err)) from None
    return Session(ws, catalog.names() if all_ else list(dict.fromkeys(names)),
                   secrets.randbelow(100000) if seed is None else seed, device, timeout, interval,
                   save=save, unicode=unicode)


SHOWN = 5  # cases listed per kind of change; the rest are counted


def snapshot(workspace):
    """{file name: (size, mtime_ns)} of the workspace's .py files."""
    out = {}
    for p in Path(workspace).glob("*.py"):
        try:
            st = p.stat()
        except OSError:  # removed between glob and stat: an editor's save in progress
            continue
        out[p.name] = (st.st_size, st.st_mtime_ns)
    return out


def changed_files(before, after):
    return sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))


def targets(session):
    if session.names:
        return session.names
    return state.Progress(session.workspace).todo()


def changes(before, after, ok="✓", bad="✗"):
    """Lines saying what differs between two RunResults of the same exercises: the score, cases
    that now pass or now fail, and failures whose explanation changed."""
    old = {c.id: c for e in before.exercises for c in e.cases}
    lines = []
    for ex in after.exercises:
        prev = next((e for e in before.exercises if e.name == ex.name), None)
        if prev is None:
            continue
        fixed = [c for c in ex.cases if c.status == "passed" and old.get(c.id) and old[c.id].status == "failed"]
        broke = [c for c in ex.cases
                 if c.status == "failed" and (old.get(c.id) is None or old[c.id].status != "failed")]
        other = [c for c in ex.cases if c.status == "failed" and c not in broke
                 and c.message.splitlines()[:1] != old[c.id].message.splitlines()[:1]]
        if prev.score != ex.score:
            lines.append(f"  {ex.name}: {prev.score:g} -> {ex.score:g} / {ex.points:g}")
        for mark, what, group in ((ok, "now passes", fixed), (bad, "now fails", broke),
                                  (bad, "fails differently", other)):
            for c in group[:SHOWN]:
                lines.append(f"  {mark} {what}: {c.title}{f' [{c.params}]' if c.params else ''}")
            if len(group) > SHOWN:
                n = len(group) - SHOWN
                lines.append(f"  {mark} {what}: {n} more case{'s' if n > 1 else ''}")
        first = (broke + other)[:1]
        for c in first:
            lines.extend("      " + ln for ln in c.message.splitlines()[:12])
    return lines


def grade_once(session, grading, refresh=False):
    """One run on the session's standby worker (a fresh one is started for the next run)."""
    names = targets(session)
    request = GradeRequest(str(session.workspace), names, session.seed, session.device)
    result = grading.grade(request, refresh=refresh, standby=True)
    if session.save:
        state.Progress(session.workspace).record(result)
    return result


def run(session, echo):
    """Watch until Ctrl-C (or SIGTERM); echo(text) prints. Returns the number of runs."""

    def stop(signum, frame):
        session._stop = True
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    grading = GradingSession(session.workspace, Limits(seconds=session.timeout), device=session.device)
    try:
        seen = snapshot(session.workspace)
        echo(f"Watching {session.workspace} (seed {session.seed}); save a file to re-grade, Ctrl-C to stop.\n")
        _round(session, grading, [], echo)
        while not session._stop:
            time.sleep(session.interval)
            now = snapshot(session.workspace)
            if now == seen:
                continue
            time.sleep(min(0.05, session.interval))  # an editor may write a file in several steps
            now = snapshot(session.workspace)
            files = changed_files(seen, now)
            seen = now
            _round(session, grading, files, echo, refresh=True)
    except KeyboardInterrupt:
        if not session._stop:
            raise
    finally:
        grading.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    echo(f"\nStopped watching after {session.runs} run{'s' if session.runs != 1 else ''}.\n")
    return session.runs


def _round(session, grading, files, echo, refresh=False):
    t0 = time.perf_counter()
    result = grade_once(session, grading, refresh=refresh)
    if session._stop:  # Ctrl-C while grading: no half-finished report
        return result
    session.runs += 1
    seconds = time.perf_counter() - t0
    ok, bad = ("✓", "✗") if session.unicode else ("ok", "X")
    stamp = time.strftime("%H:%M:%S")
    last, session.last = session.last, result
    same = last is not None and [e.name for e in last.exercises] == [e.name for e in result.exercises]
    if not same:
        text = report.terminal(result, unicode=session.unicode, command="posgrade check "
                               + " ".join(e.name for e in result.exercises))
        echo(f"[{stamp}] {', '.join(files) or 'first run'} · graded in {seconds:.2f} s\n{text}")
    else:
        lines = changes(last, result, ok, bad)
        head = f"[{stamp}] {', '.join(files)} changed · graded in {seconds:.2f} s · score {result.score:g} / " \
               f"{result.max_score:g}"
        if not lines:
            failing = sum(1 for e in result.exercises for c in e.cases if c.status == "failed")
            lines = [f"  no change: {failing} case{' still fails' if failing == 1 else 's still fail'}" if failing
                     else "  no change: every case passes"]
        echo(head + "\n" + "\n".join(lines) + "\n")
    if result.passed:
        done = [e.name for e in result.exercises]
        nxt = targets(session) if not session.names else []
        if nxt and nxt != done:
            echo(f"{ok} {', '.join(done)} passed. Next: {nxt[0]} (watching it now; save to grade).\n")
            session.last = None
        else:
            echo(f"{ok} every graded case passes.\n")
    return result

