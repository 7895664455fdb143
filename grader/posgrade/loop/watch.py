"""`posgrade watch`: re-grade whenever a workspace file is saved, and say what changed.

The loop polls the workspace's .py files (size and modification time, every `interval`
seconds; no extra dependency). A worker is always started ahead of need, so its torch
import is done while the learner edits: when a file changes, that standby worker gets the
saved files (Worker.refresh), grades them in this process (torch and pytest already
imported here), and is then replaced by a fresh one, so learner code never carries state
from one run into the next. The seed stays the same for the whole session, so a change in
the verdict comes from the code, not from new random inputs.

Without exercise names it follows the learner: the first exercise not yet passed, and the
next one once that passes; once every exercise has passed, a save re-grades only the exercise
whose file changed. A notebook (<name>.ipynb, no <name>.py beside it) is watched like a file.
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
    names = validate_names(names, all_)
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
    """{file name: (size, mtime_ns)} of the workspace's .py and .ipynb files."""
    out = {}
    for p in [*Path(workspace).glob("*.py"), *Path(workspace).glob("*.ipynb")]:
        try:
            st = p.stat()
        except OSError:  # removed between glob and stat: an editor's save in progress
            continue
        out[p.name] = (st.st_size, st.st_mtime_ns)
    return out


def changed_files(before, after):
    return sorted(n for n in set(before) | set(after) if before.get(n) != after.get(n))


def targets(session, files=()):
    """The exercises to grade: the session's names; else the first one not yet passed; else (all
    passed) the exercises whose files changed, or every one on the first run."""
    if session.names:
        return session.names
    todo = state.Progress(session.workspace).todo()
    if len(todo) > 1:  # every exercise has passed: todo() gives them all
        changed = [n for n in catalog.names() if f"{n}.py" in files or f"{n}.ipynb" in files]
        return changed or ([e.name for e in session.last.exercises] if session.last else todo)
    return todo


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
        if _score(prev.score) != _score(ex.score):
            lines.append(f"  {ex.name}: {_score(prev.score)} -> {_score(ex.score)} / {ex.points:g}")
        failing = [c for c in ex.cases if c.status == "failed"]
        if broke + other and all(c.kind == "import" for c in failing):
            # a file that does not import fails every case the same way: say it once
            lines.append(f"  {bad} {ex.name}: {len(failing)} case{'s fail' if len(failing) > 1 else ' fails'} "
                         "on the import of your file:")
            lines.extend("      " + ln for ln in failing[0].message.splitlines()[:12])
            broke = other = []
        explained = (broke + other)[:1]  # the first new failure is explained right under its own line
        for mark, what, group in ((ok, "now passes", fixed), (bad, "now fails", broke),
                                  (bad, "fails differently", other)):
            for c in group[:SHOWN]:
                lines.append(f"  {mark} {what}: {c.title}{f' [{c.params}]' if c.params else ''}")
                if c in explained:
                    lines.extend("      " + ln for ln in c.message.splitlines()[:12])
            if len(group) > SHOWN:
                n = len(group) - SHOWN
                lines.append(f"  {mark} {what}: {n} more case{'s' if n > 1 else ''}")
    return lines


def _score(x):
    """A score rounded to one decimal, as every report rounds it (10, 56.2)."""
    return f"{round(x, 1):g}"


def grade_once(session, grading, refresh=False, files=()):
    """One run on the session's standby worker (a fresh one is started for the next run)."""
    names = targets(session, files)
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
    grading = GradingSession(session.workspace, Limits(seconds=session.timeout), device=session.device,
                             fork_server=True)
    try:
        seen = snapshot(session.workspace)
        echo(f"Watching {session.workspace} (seed {session.seed}); save a file to re-grade, Ctrl-C to stop.\n")
        if state.is_kit_stub_dir(session.workspace):
            echo(f"Note: {state.KIT_STUBS_NOTE}.\n")
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
    result = grade_once(session, grading, refresh=refresh, files=files)
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
        head = f"[{stamp}] {', '.join(files)} changed · graded in {seconds:.2f} s · score {_score(result.score)} / " \
               f"{result.max_score:g}"
        if not lines:
            failing = sum(1 for e in result.exercises for c in e.cases if c.status == "failed")
            lines = [f"  no change: {failing} case{' still fails' if failing == 1 else 's still fail'}" if failing
                     else "  no change: every case passes"]
        echo(head + "\n" + "\n".join(lines) + "\n")
    if result.error:  # the grader could not finish: say so, as `check` does, never a silent "not passed"
        echo(f"Grading did not finish: {result.error.splitlines()[0]}\n")
        return result
    if result.passed:
        done = [e.name for e in result.exercises]
        nxt = targets(session) if not session.names else []
        if nxt and nxt != done:
            echo(f"{ok} {', '.join(done)} passed. Next: {nxt[0]} (watching it now; save to grade).\n")
            session.last = None
        else:
            echo(f"{ok} every graded case passes.\n")
    return result

