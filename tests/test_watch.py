"""`posgrade watch`: re-grades on save, reports what changed, keeps a worker warm, stops cleanly."""

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import ROOT, WRONG, make_workspace, snapshot

from posgrade import cli
from posgrade.grading import learner as learner_mod, process
from posgrade.grading import session as runner
from posgrade.loop import watch
from posgrade.results import CaseResult, ExerciseResult, RunResult


def result_of(statuses, messages=None):
    messages = messages or {}
    cases = [CaseResult(id=f"rope::{n}", exercise="rope", name=n, title=f"title {n}", params="", device="",
                        points=1.0, score=1.0 if s == "passed" else 0.0, status=s,
                        message=messages.get(n, "" if s == "passed" else f"{n} is wrong\ndetail"),
                        kind="" if s == "passed" else "wrong")
             for n, s in statuses.items()]
    ex = ExerciseResult("rope", "RoPE", 15, sum(c.score for c in cases), len(cases), cases)
    return RunResult(workspace="ws", seed=1, devices=["cpu"], exercises=[ex])


def test_changes_lists_fixed_broken_and_changed_cases():
    before = result_of({"a": "failed", "b": "passed", "c": "failed", "d": "failed"})
    after = result_of({"a": "passed", "b": "failed", "c": "failed", "d": "failed"},
                      {"c": "c is wrong in a new way\nmore"})
    lines = watch.changes(before, after)
    assert lines[0] == "  rope: 3.75 -> 3.75 / 15" or "rope:" not in lines[0]  # same score: no score line
    text = "\n".join(lines)
    assert "✓ now passes: title a" in text
    assert "✗ now fails: title b" in text
    assert "✗ fails differently: title c" in text
    assert "title d" not in text  # failing the same way as before: not news
    assert "b is wrong" in text  # the first new failure is explained


def test_changes_folds_long_lists_and_says_nothing_without_change():
    before = result_of({f"t{i}": "failed" for i in range(9)})
    after = result_of({f"t{i}": "passed" for i in range(9)})
    lines = watch.changes(before, after, ok="ok")
    assert lines[0] == "  rope: 0 -> 15 / 15"
    assert sum("now passes: title" in ln for ln in lines) == watch.SHOWN
    assert lines[-1] == "  ok now passes: 4 more cases"
    assert watch.changes(after, after) == []


def test_snapshot_sees_edits_new_and_removed_files(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    s1 = watch.snapshot(tmp_path)
    (tmp_path / "a.py").write_text("x = 22\n")
    (tmp_path / "b.py").write_text("")
    (tmp_path / "notes.txt").write_text("ignored")
    s2 = watch.snapshot(tmp_path)
    assert watch.changed_files(s1, s2) == ["a.py", "b.py"]
    (tmp_path / "b.py").unlink()
    assert watch.changed_files(s2, watch.snapshot(tmp_path)) == ["b.py"]


def test_refresh_only_before_learner_code_ran(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    worker = runner.start_worker(ws, device="cpu")
    try:
        (ws / "extra.py").write_text("VALUE = 5\n")
        worker.refresh()
        learner = learner_mod.Learner(worker, "sinusoidal")
        assert learner.sinusoidal_table(2, 2).shape == (2, 2)
        with pytest.raises(RuntimeError, match="has not run learner code"):
            worker.refresh()
    finally:
        worker.close()


def test_usage_errors_exit_2(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    run = CliRunner().invoke
    r = run(cli.main, ["watch", "sinusodial", "--workspace", str(ws)])
    assert r.exit_code == 2 and "did you mean sinusoidal" in r.output
    r = run(cli.main, ["watch", "rope", "--all", "--workspace", str(ws)])
    assert r.exit_code == 2 and "not both" in r.output
    (ws / "rope.py").unlink()
    r = run(cli.main, ["watch", "rope", "--workspace", str(ws)])
    assert r.exit_code == 2 and "posgrade init" in r.output
    r = run(cli.main, ["watch", "--workspace", str(tmp_path / "nowhere")])
    assert r.exit_code == 2


class Watcher:
    """`posgrade watch` in a real child process, its output read line by line."""

    def __init__(self, args):
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
        self.proc = subprocess.Popen([sys.executable, "-m", "posgrade", "watch", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, text, timeout=60):
        """All output up to the line containing text (AssertionError after timeout seconds)."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; output so far:\n{''.join(self.seen + got)}")
            if line is None:
                raise AssertionError(f"watch ended before {text!r}:\n{''.join(self.seen + got)}")
            got.append(line)
            if text in line:
                self.seen += got
                return "".join(got)

    def children(self):
        """The pids of the watch process's worker processes now alive."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                    pids.append(int(entry))
        return pids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_watch_regrades_on_save_and_stops_cleanly(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py"})
    w = Watcher(["sinusoidal", "--workspace", str(ws), "--seed", "3", "--interval", "0.1", "--no-save"])
    try:
        first = w.wait_for("Reproduce:")
        assert "first run" in first and "looks like: sin and cos swapped" in first
        time.sleep(1.0)  # the standby worker is started (and importing torch) while we "edit"
        (ws / "sinusoidal.py").write_text((ROOT / "solutions" / "sinusoidal.py").read_text())
        fixed = w.wait_for("every graded case passes")
        moved = re.search(r"sinusoidal: ([\d.]+) -> 10 / 10", fixed)
        assert "sinusoidal.py changed" in fixed and moved, fixed
        assert float(moved[1]) < 10 and f"{moved[1]} / 10" in first, first  # from the first run's score
        assert "now passes: sinusoidal_table matches the formula" in fixed
        assert "now fails" not in fixed

        before = snapshot(ws)
        (ws / "sinusoidal.py").write_text((WRONG / "sinusoidal" / "ignores_offset.py").read_text())
        broke = w.wait_for("hint:")
        assert "now fails: forward(x, offset)" in broke and "looks like: offset ignored" in broke
        w.wait_for("[1, 1, 0]")  # the rest of the explanation
        time.sleep(0.5)
        (ws / "sinusoidal.py").touch()
        assert "no change: 1 case still fails" in w.wait_for("no change")
        assert set(snapshot(ws)) == set(before)  # the grader wrote nothing into the workspace

        deadline = time.monotonic() + 10
        while not (workers := w.children()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert workers, "a standby worker should be running between saves"
        w.proc.send_signal(signal.SIGINT)
        code = w.proc.wait(timeout=30)
        rest = "".join(iter(lambda: w.lines.get(timeout=5) or "", ""))
        assert code == 0, rest
        assert "Stopped watching after 4 runs." in rest
        assert "Traceback" not in "".join(w.seen) + rest
        time.sleep(0.2)
        assert not [p for p in workers if alive(p)], "worker processes outlived watch"
    finally:
        if w.proc.poll() is None:
            w.proc.kill()
