"""Learner code that hangs, exits, crashes or does not import ends as failed, explained
cases, within the time limits, with the grader finishing and no workspace file changed."""

import time

import pytest
from conftest import HOSTILE, INTERNALS, grade, make_workspace, snapshot

# (file, the failure kind every graded case must show, words the explanation must contain)
HOSTILE_FILES = [
    ("loop_at_import", "import", "took longer than"),
    ("loop_in_call", "timeout", "took longer than"),
    ("exit_at_import", "import", "exit code 0"),
    ("exit_in_call", "exception", "called sys.exit(0) in sinusoidal_table()"),
    ("raise_at_import", "import", "could not be imported: RuntimeError: boom at import"),
    ("syntax_error", "import", "SyntaxError"),
    ("segfault", "crash", "segmentation fault"),
    ("kills_itself", "crash", "killed by signal SIGKILL"),
    ("wrong_types", None, None),
    ("memory_hog", "memory", "ran out of memory"),
    ("floods_output", "exception", "more characters not shown"),
    ("imports_solution", "import", "learner code may not import posgrade"),
    ("writes_workspace", "exception", "vandalised"),
    ("garbles_channel", "crash", "something that is not a reply"),
]


@pytest.mark.parametrize("stem,kind,words", HOSTILE_FILES)
def test_hostile_learner_code_fails_cleanly(tmp_path, stem, kind, words):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / f"{stem}.py"})
    before = snapshot(ws)
    t0 = time.monotonic()
    result = grade(ws, ["sinusoidal"], seed=3, seconds=2.0)
    elapsed = time.monotonic() - t0
    (ex,) = result.exercises
    graded = [c for c in ex.cases if c.status != "skipped"]
    assert graded and all(c.status == "failed" for c in graded), stem
    assert ex.score == 0
    assert all(c.kind != "internal" for c in graded), {c.id: c.message for c in graded if c.kind == "internal"}
    source = {line.strip() for line in (HOSTILE / f"{stem}.py").read_text().splitlines() if line.strip()}
    said = {c.id: "\n".join(line for line in c.message.splitlines() if line.strip() not in source) for c in graded}
    leaks = {i: INTERNALS.search(m).group(0) for i, m in said.items() if INTERNALS.search(m)}  # quotes of the file aside
    assert not leaks, leaks  # what learners see names their code, never the grader's own parts
    if kind:
        first = graded[0]
        assert first.kind == kind and words in first.message, (first.kind, first.message)
    # two time-outs or crashes at most per exercise (Limits.stops_per_exercise), then calls fail at once
    assert elapsed < 30, f"{stem} took {elapsed:.1f} s"
    assert snapshot(ws) == before


def test_non_tensor_result_is_explained(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "wrong_types.py"})
    result = grade(ws, ["sinusoidal"], seed=3, seconds=5.0)
    table_cases = [c for c in result.exercises[0].cases if c.name == "test_table_values"]
    assert table_cases and all("returned a numpy.ndarray (shape (2, 3)" in c.message and "expected a torch.Tensor" in c.message
                               for c in table_cases), [c.message for c in table_cases]


def test_result_on_another_device_is_explained(tmp_path):
    """Right values on the wrong device fail with a message that says to follow the input's device."""
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "wrong_device.py"})
    before = snapshot(ws)
    (ex,) = grade(ws, ["sinusoidal"], seed=3, seconds=5.0).exercises
    table_cases = [c for c in ex.cases if c.name == "test_table_values"]
    assert table_cases and all(c.status == "failed" and c.kind == "wrong" for c in table_cases)
    assert all("returned a tensor on meta, expected it on cpu" in c.message and "x.device" in c.message
               for c in table_cases), table_cases[0].message
    module_cases = [c for c in ex.cases if c.name == "test_forward_values" and c.status != "skipped"]
    assert module_cases and all("SinusoidalPositionalEncoding returned a tensor on meta" in c.message
                                for c in module_cases), module_cases[0].message
    assert ex.score < ex.points / 2 and not any(c.kind == "internal" for c in ex.failures)
    assert snapshot(ws) == before


def test_torchs_own_not_implemented_error_is_not_a_stub(tmp_path):
    """NotImplementedError raised inside torch (not by the stub's `raise`) is an ordinary error."""
    code = "import torch\n\ndef sinusoidal_table(max_len, d_model, base=10000.0):\n" \
           "    return torch.zeros(max_len, d_model, device='meta').cpu()\n"
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": code})
    (ex,) = grade(ws, ["sinusoidal"], seed=3).exercises
    table = [c for c in ex.cases if c.name == "test_table_values"]
    assert table and all(c.kind == "exception" for c in table)
    assert all(c.message.startswith("NotImplementedError in sinusoidal_table(): Cannot copy out of meta")
               for c in table), table[0].message


def test_import_error_is_reported_once_per_case_not_retried(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "raise_at_import.py"})
    result = grade(ws, ["sinusoidal"], seed=3)
    messages = {c.message.splitlines()[0] for c in result.exercises[0].failures}
    assert messages == {"your sinusoidal.py could not be imported: RuntimeError: boom at import"}


def test_os_exit_in_a_module_is_a_crash(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "exit_in_call.py"})
    result = grade(ws, ["sinusoidal"], seed=3)
    module_cases = [c for c in result.exercises[0].failures if c.name == "test_module_has_no_parameters"]
    assert module_cases and module_cases[0].kind == "crash"
    assert "exit code 3" in module_cases[0].message


def test_memory_limit_stops_gradual_growth(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "memory_hog.py"})
    result = grade(ws, ["sinusoidal"], seed=3, memory_mb=1024)
    module_cases = [c for c in result.exercises[0].failures if c.name == "test_module_has_no_parameters"]
    assert module_cases and module_cases[0].kind == "memory", module_cases[0].message
    assert "1024 MB" in module_cases[0].message


def test_output_flood_is_capped(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "floods_output.py"})
    result = grade(ws, ["sinusoidal"], seed=3, file_mb=8)
    first = result.exercises[0].failures[0]
    assert "RuntimeError" in first.message and len(first.message) < 10000
    module_case = next(c for c in result.exercises[0].failures if c.name == "test_module_has_no_parameters")
    assert module_case.kind in ("exception", "crash") and "File too large" in module_case.message


def test_rss_watchdog_stops_growth_without_an_address_space_limit(tmp_path):
    """On CUDA machines the worker has no RLIMIT_AS; the grader's RSS watchdog must act alone."""
    from posgrade.grading import learner as learner_mod, process
    from posgrade.grading import session as runner

    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "memory_hog.py"})
    worker = process.Worker(ws, runner.Limits(memory_mb=768, seconds=60), cuda=True)
    try:
        learner = learner_mod.Learner(worker, "sinusoidal")
        t0 = time.monotonic()
        with pytest.raises(runner.LearnerError) as info:
            learner.probe("module", cls="SinusoidalPositionalEncoding")
        assert info.value.kind == "memory" and "768 MB" in info.value.summary
        assert time.monotonic() - t0 < 30
    finally:
        worker.close()


def test_patching_torch_or_pytest_in_learner_code_changes_no_verdict(tmp_path):
    """The worker's torch is not the grader's: patched comparisons only fool the worker."""
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "patches_torch.py"})
    result = grade(ws, ["sinusoidal"], seed=3)
    by_name = {}
    for c in result.exercises[0].cases:
        by_name.setdefault(c.name, []).append(c.status)
    for name in ("test_table_values", "test_row_zero", "test_even_columns_sin", "test_forward_values"):
        assert set(by_name[name]) <= {"failed", "skipped"} and "failed" in by_name[name], (name, by_name[name])
    assert result.exercises[0].score < 3


def test_lingering_thread_and_child_process_are_ended(tmp_path):
    import os
    import signal

    def children():  # found by the marker in their command line (the child may not write a pid file)
        found = []
        for d in (d for d in os.listdir("/proc") if d.isdigit()):
            try:
                if b"posgrade-hostile-child" in open(f"/proc/{d}/cmdline", "rb").read():
                    found.append(int(d))
            except OSError:
                pass
        return found

    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "lingering_thread_and_child.py"})
    t0 = time.monotonic()
    result = grade(ws, ["sinusoidal"], seed=3, seconds=5.0)
    assert time.monotonic() - t0 < 60
    ex = result.exercises[0]
    assert ex.score > 0  # the answers are right: a busy thread does not stop grading
    time.sleep(0.2)
    alive = [pid for pid in children()
             if open(f"/proc/{pid}/status").read().split("State:")[1].split()[0] != "Z"]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the learner's child process outlived the grading run"


def test_bad_returns_and_reseeding_fail_with_reasons(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "reseeds_and_bad_returns.py"})
    result = grade(ws, ["sinusoidal"], seed=3)
    messages = {c.id: c.message for c in result.exercises[0].failures}
    assert any("returned a list" in m and "expected a torch.Tensor" in m for m in messages.values()), messages
    assert any("dtype torch.float64, expected torch.float32" in m for m in messages.values()), messages
    assert all(c.kind != "internal" for c in result.exercises[0].cases)


@pytest.mark.parametrize("stem", ["segfault", "loop_at_import", "syntax_error"])
def test_cli_exit_code_is_1_for_broken_learner_code(tmp_path, stem):
    import subprocess
    import sys

    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / f"{stem}.py"})
    before = snapshot(ws / "sinusoidal.py")
    p = subprocess.run([sys.executable, "-m", "posgrade", "check", "sinusoidal", "-w", str(ws), "--timeout", "2"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "0.0 / 10" in p.stdout and "Traceback" not in p.stderr
    assert snapshot(ws / "sinusoidal.py") == before


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "no-sandbox"])
def test_a_grader_killed_from_outside_leaves_no_worker_running(tmp_path, sandboxed):
    """kill -9 of `posgrade check` (a CI's hard time-out) while learner code loops: its worker (and,
    sandboxed, the worker's init and namespace) end too, instead of spinning on a core for ever."""
    import os
    import signal
    import subprocess
    import sys

    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "loop_in_call.py"})

    def alive(pid):
        try:
            return open(f"/proc/{pid}/status").read().split("State:")[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def cpu_seconds(pid):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            return 0

    def descendants(root):  # every process below root, by the parent pid each has in /proc
        parent = {}
        for d in (d for d in os.listdir("/proc") if d.isdigit()):
            try:
                parent[int(d)] = int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
        found, todo = [], [root]
        while todo:
            node = todo.pop()
            kids = [p for p, pp in parent.items() if pp == node]
            found += kids
            todo += kids
        return [p for p in found if alive(p)]

    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    if not sandboxed:  # no pid namespace: the worker is the grader's own child
        env["POSGRADE_SANDBOX"] = "off"
    cli = subprocess.Popen([sys.executable, "-m", "posgrade", "check", "sinusoidal", "-w", str(ws), "--timeout", "60"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while not descendants(cli.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        while time.monotonic() < deadline and max(map(cpu_seconds, descendants(cli.pid)), default=0) < 4:
            time.sleep(0.1)  # torch's import takes 1-2 s of CPU: past 4 s, the learner's call is looping
        workers = descendants(cli.pid)
        assert workers, "no worker started"
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "a worker outlived the grader that started it"
