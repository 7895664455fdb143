"""Learner code reaches nothing but its scratch folder (issue 13; grading/sandbox.py).

Each hostile file (tests/hostile/) attacks at import or in sinusoidal_table() and otherwise answers
right (tests/hostile/*.py import the reference as their own `right.py`; `targets.py`, written here,
tells them what to attack). Each runs twice: with the sandbox on, every attack fails, the grade is
full marks, nothing outside the scratch folder changes; with POSGRADE_SANDBOX=off, the attacks that
the built environment does not stop succeed, and every result says "learner code was not sandboxed".
"""

import hashlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import HOSTILE, ROOT, make_workspace, snapshot

from posgrade.grading import sandbox
from posgrade.grading import session as runner
from posgrade.kit import manifest, state

MODES = ["on", "off"]
REFERENCE = state.kit_dir("solutions") / "sinusoidal.py"
CASE = Path(importlib.util.find_spec("posgrade.grading.cases").origin).parent / "test_sinusoidal.py"  # as installed
NOT_SANDBOXED = "learner code was not sandboxed: "


def _kit():
    return manifest.hashes(manifest.roots())


def _workspace(tmp_path, stem, targets):
    return make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / f"{stem}.py", "right": REFERENCE,
                                            "targets": f"TARGETS = {targets!r}\n"})


def _grade(ws, mode, monkeypatch, seconds=5.0):
    """One grading run in this process with the sandbox on or off (a session of its own: the shared
    standby workers of conftest.grade() were started under whatever mode was current)."""
    if mode == "off":
        monkeypatch.setenv(sandbox.SWITCH, "off")
    else:
        monkeypatch.delenv(sandbox.SWITCH, raising=False)
    t0 = time.monotonic()
    with runner.GradingSession(ws, runner.Limits(seconds=seconds), device="cpu") as session:
        result = session.grade(runner.GradeRequest(str(ws), ["sinusoidal"], seed=3, device="cpu"))
    return result, time.monotonic() - t0


def _messages(result):
    return "\n".join(c.message for e in result.exercises for c in e.cases)


def _assert_sandboxed(result, elapsed):
    (ex,) = result.exercises
    assert not result.error, result.error
    assert ex.score == ex.points, _messages(result)[:2000]
    assert "LEAKED" not in _messages(result)
    assert not [n for n in result.notes if n.startswith(NOT_SANDBOXED)], result.notes
    assert elapsed < 30


def _assert_reported(result):
    assert any(n.startswith(NOT_SANDBOXED + "switched off") for n in result.notes), result.notes


# -- the machine ------------------------------------------------------------------------------------
def test_this_machine_has_landlock_and_doctor_says_so():
    """The project's CI machine offers Landlock (issue 13): the hostile tests below test it, not a fallback."""
    abi, reason = sandbox.landlock_abi()
    assert abi >= 1, reason
    out = subprocess.run([sys.executable, "-m", "posgrade", "doctor"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"Landlock: ABI {abi}" in out.stdout, out.stdout + out.stderr
    assert "a pid namespace per worker with a /proc of its own" in out.stdout, out.stdout  # CUDA workers need it
    off = subprocess.run([sys.executable, "-m", "posgrade", "doctor"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, sandbox.SWITCH: "off"})
    assert "learner code is not sandboxed" in off.stdout


def test_worker_environment_is_built_not_inherited(tmp_path):
    env = sandbox.environment(str(tmp_path), cuda=False, inherited={
        "GITHUB_TOKEN": "t", "ACTIONS_RUNTIME_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "t", "LANG": "de_DE.UTF-8",
        "OMP_NUM_THREADS": "2", "POSGRADE_WORKSPACE": "/home/x"})
    assert env["HOME"] == str(tmp_path) and env["LANG"] == "de_DE.UTF-8" and env["OMP_NUM_THREADS"] == "2"
    assert not [k for k in env if k.startswith(("GITHUB_", "ACTIONS_", "AWS_", "POSGRADE_"))]


def test_dropping_root_to_nobody_leaves_only_the_scratch_folder_writable(tmp_path):
    """As root with a Python that others can read (here /usr/bin/python3, without torch), the worker's
    sandbox drops to uid 65534 and Landlock still applies (this machine's venv Python lives under
    /root, which an unprivileged uid cannot read, so its workers keep uid 0 with no capabilities)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root and /usr/bin/python3")
    import tempfile

    # both directly under /tmp (pytest's tmp_path is closed to other users): the scratch folder as
    # the grader makes it, and a world-writable folder that only Landlock keeps the worker out of
    scratch = Path(tempfile.mkdtemp(prefix="posgrade-test-scratch-"))
    open_dir = Path(tempfile.mkdtemp(prefix="posgrade-test-open-"))
    open_dir.chmod(0o777)
    outside = open_dir / "outside.txt"
    code = f"""
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("sb", {str(ROOT / 'grader/posgrade/grading/sandbox.py')!r})
sb = importlib.util.module_from_spec(spec); spec.loader.exec_module(sb)
config = {{"scratch": {str(scratch)!r}, "hidden": [{str(ROOT)!r}], "cuda": False, "abi": sb.landlock_abi()[0],
          "uid": None}} | sb._who(True)
sb.prepare_scratch(config)
status = sb.restrict(config)
facts = {{"status": status, "uid": os.getuid(), "euid": os.geteuid()}}
for name, path in (("scratch", {str(scratch / 'x.txt')!r}), ("outside", {str(outside)!r})):
    try:
        open(path, "w").write("x"); facts[name] = "written"
    except OSError as err:
        facts[name] = type(err).__name__
try:
    open({str(REFERENCE)!r}).read(); facts["reference"] = "read"
except OSError as err:
    facts["reference"] = type(err).__name__
print(json.dumps(facts))
"""
    try:
        out = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
        still = outside.exists()
        shutil.rmtree(open_dir, ignore_errors=True)
    assert out.returncode == 0, out.stderr
    import json

    facts = json.loads(out.stdout)
    assert facts["uid"] == facts["euid"] == sandbox.NOBODY, facts
    assert facts["status"]["landlock"] >= 1, facts
    assert facts["scratch"] == "written" and facts["outside"] == "PermissionError", facts
    assert facts["reference"] == "PermissionError" and not still


# -- hostile files ------------------------------------------------------------------------------------
@pytest.mark.writes_kit  # with the sandbox off the write lands: no other grading may overlap (conftest)
@pytest.mark.parametrize("mode", MODES)
def test_overwriting_the_reference_and_a_hidden_case(tmp_path, monkeypatch, mode):
    saved = {p: p.read_bytes() for p in (REFERENCE, CASE)}
    try:
        ws = _workspace(tmp_path, "overwrites_kit", {"reference": str(REFERENCE), "case": str(CASE)})
        before = snapshot(ws)
        result, elapsed = _grade(ws, mode, monkeypatch)
        if mode == "on":
            _assert_sandboxed(result, elapsed)
            assert {p: p.read_bytes() for p in saved} == saved
        else:  # the write lands, and the run ends as an error, never a grade
            _assert_reported(result)
            assert result.status == "error" and result.error.startswith("the kit's files changed on disk (")
            assert result.error.endswith("): reinstall posgrade"), result.error
        assert snapshot(ws) == before
    finally:
        for p, data in saved.items():
            if p.read_bytes() != data:
                p.write_bytes(data)


def test_a_changed_kit_file_stops_the_next_run_before_any_case(tmp_path, monkeypatch):
    """An installed kit whose files differ from the build's manifest grades nothing."""
    baseline = _kit()
    monkeypatch.setattr(manifest, "recorded", lambda: {**baseline, "solutions/sinusoidal.py": "0" * 64})
    result, _ = _grade(make_workspace(tmp_path / "ws"), "on", monkeypatch)
    assert result.status == "error" and result.score == 0
    assert result.error == "the kit's files changed on disk (solutions/sinusoidal.py): reinstall posgrade"
    assert not [c for e in result.exercises for c in e.cases]


def test_the_built_manifest_matches_the_source(tmp_path):
    """setup.py's build_py writes kit_manifest.json; its hashes are those of the files in the source tree."""
    import shutil

    pkg = tmp_path / "posgrade"
    for prefix, folder in manifest.roots():
        shutil.copytree(folder, pkg / prefix.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    written = manifest.write(pkg)["files"]
    assert written == _kit()
    assert "solutions/sinusoidal.py" in written and "grading/cases/test_sinusoidal.py" in written
    assert written["solutions/sinusoidal.py"] == hashlib.sha256(REFERENCE.read_bytes()).hexdigest()


@pytest.mark.parametrize("mode", MODES)
def test_reading_the_reference_solution(tmp_path, monkeypatch, mode):
    ws = _workspace(tmp_path, "reads_reference", {"reference": str(REFERENCE)})
    result, elapsed = _grade(ws, mode, monkeypatch)
    if mode == "on":
        _assert_sandboxed(result, elapsed)
    else:
        _assert_reported(result)
        assert "LEAKED: read" in _messages(result)


@pytest.mark.parametrize("mode", MODES)
def test_reading_the_graders_command_line(tmp_path, monkeypatch, mode):
    ws = _workspace(tmp_path, "reads_parent_cmdline", {"grader_pid": os.getpid()})
    result, elapsed = _grade(ws, mode, monkeypatch)
    if mode == "on":
        _assert_sandboxed(result, elapsed)
    else:
        _assert_reported(result)
        assert "LEAKED: " in _messages(result)


@pytest.mark.parametrize("mode", MODES)
def test_proc_is_the_workers_own(tmp_path, monkeypatch, mode):
    """In its pid namespace the worker has a /proc of its own: /proc/self is getpid(), the grader is
    not listed (with the outer /proc, CUDA's driver fails: cudaGetDeviceCount error 304)."""
    ws = _workspace(tmp_path, "reads_proc", {"grader_pid": os.getpid()})
    result, elapsed = _grade(ws, mode, monkeypatch)
    if mode == "on":
        _assert_sandboxed(result, elapsed)
    else:  # no namespace: the one /proc, where the grader is listed
        _assert_reported(result)
        assert "LEAKED: /proc lists the grader's pid" in _messages(result)


@pytest.mark.parametrize("mode", MODES)
def test_reading_the_graders_environment(tmp_path, monkeypatch, mode):
    """The worker's environment is built in both modes: a token of the grader's never reaches it."""
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret_of_the_test")
    ws = _workspace(tmp_path, "reads_env", {"env": "GITHUB_TOKEN"})
    result, elapsed = _grade(ws, mode, monkeypatch)
    assert "ghp_secret_of_the_test" not in _messages(result)
    if mode == "on":
        _assert_sandboxed(result, elapsed)
    else:
        _assert_reported(result)
        assert result.exercises[0].score == result.exercises[0].points


@pytest.mark.parametrize("mode", MODES)
def test_connecting_to_a_tcp_server(tmp_path, monkeypatch, mode):
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    seen = []
    done = threading.Event()

    def accept():
        while not done.is_set():
            try:
                conn, _ = server.accept()
                seen.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        ws = _workspace(tmp_path, "connects_tcp", {"port": server.getsockname()[1]})
        result, elapsed = _grade(ws, mode, monkeypatch)
    finally:
        done.set()
        thread.join(2)
        server.close()
    if mode == "on":
        _assert_sandboxed(result, elapsed)
        assert seen == []
    else:
        _assert_reported(result)
        assert seen and seen[0] == b"learner code was here"


def _alive_with(marker):
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker in Path(f"/proc/{d}/cmdline").read_bytes():
                    pids.append(int(d))
            except OSError:
                pass
    return pids


@pytest.mark.parametrize("mode", MODES)
def test_a_double_forked_daemon_does_not_outlive_the_run(tmp_path, monkeypatch, mode):
    out = tmp_path / "autograder" / "results"
    out.mkdir(parents=True)
    results_json = out / "results.json"
    ws = _workspace(tmp_path, "daemon_writes_results", {"results_json": str(results_json), "sleep": 2})
    result, elapsed = _grade(ws, mode, monkeypatch)
    time.sleep(3)  # past the daemon's sleep
    alive = _alive_with(b"posgrade-hostile-daemon")
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    if mode == "on":
        _assert_sandboxed(result, elapsed)
        assert not alive and not results_json.exists()
    else:  # the process-group kill misses a daemon in its own session: the documented fallback's limit
        _assert_reported(result)
        assert results_json.exists()


def _grader_writes_its_pid(ws, mode):
    """Run `posgrade check` in a process that first writes its own pid into the workspace's targets.py."""
    code = ("import os, sys\n"
            "open(sys.argv[1], 'w').write('TARGETS = {\"grader_pid\": %d}\\n' % os.getpid())\n"
            "from posgrade.cli import main\n"
            "main(['check', 'sinusoidal', '-w', sys.argv[2], '--device', 'cpu', '--no-save'])\n")
    code_args = [str(ws / "targets.py"), str(ws)]
    env = {**os.environ, sandbox.SWITCH: "off"} if mode == "off" else {
        k: v for k, v in os.environ.items() if k != sandbox.SWITCH}
    return subprocess.run([sys.executable, "-c", code, *code_args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("mode", MODES)
def test_sigkill_to_the_grader(tmp_path, mode):
    ws = _workspace(tmp_path, "kills_grader", {"grader_pid": 0})
    t0 = time.monotonic()
    p = _grader_writes_its_pid(ws, mode)
    if mode == "on":
        assert p.returncode == 0 and "10.0 / 10" in p.stdout, p.stdout + p.stderr
        assert NOT_SANDBOXED not in p.stdout
        assert time.monotonic() - t0 < 60
    else:  # without the sandbox the grader dies: the fallback cannot stop this one
        assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr


@pytest.mark.parametrize("mode", MODES)
def test_grade_batch_submissions_cannot_touch_each_other_or_the_results(tmp_path, mode):
    subs, out = tmp_path / "subs", tmp_path / "grades"
    bob = make_workspace(subs / "bob")
    targets = {"sibling": str(bob / "sinusoidal.py"), "results": str(out)}
    make_workspace(subs / "alice", {"sinusoidal": HOSTILE / "writes_sibling_and_results.py", "right": REFERENCE,
                                     "targets": f"TARGETS = {targets!r}\n"})
    before = snapshot(bob)
    env = {**os.environ, sandbox.SWITCH: "off"} if mode == "off" else {
        k: v for k, v in os.environ.items() if k != sandbox.SWITCH}
    cmd = [sys.executable, "-m", "posgrade", "grade-batch", str(subs), "--out", str(out), "-e", "sinusoidal"]
    if mode == "off":
        refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 2 and "--no-sandbox" in refused.stderr, refused.stdout + refused.stderr
        cmd.append("--no-sandbox")
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert time.monotonic() - t0 < 120
    import json

    bob_result = json.loads((out / "results" / "bob.json").read_text())
    alice_result = json.loads((out / "results" / "alice.json").read_text())
    if mode == "on":
        assert snapshot(bob) == before and not (out / "pwned.txt").exists(), p.stdout + p.stderr
        assert bob_result["score"] == bob_result["max_score"] == alice_result["score"]
        assert not [n for n in alice_result["notes"] if n.startswith(NOT_SANDBOXED)]
    else:
        assert snapshot(bob) != before or (out / "pwned.txt").exists()
        assert any(n.startswith(NOT_SANDBOXED) for n in alice_result["notes"])


def test_a_checkouts_kit_check_covers_the_runs_exercises_and_the_shared_files(monkeypatch):
    """Without a build manifest (a checkout), a run's baseline holds its exercises' own files and the
    shared ones; another exercise's files, which their author may be editing, are not in it."""
    monkeypatch.setattr(manifest, "recorded", lambda: None)
    baseline, changed = manifest.begin(["sinusoidal"])
    assert changed is None
    assert {"solutions/sinusoidal.py", "grading/cases/test_sinusoidal.py", "diagnosis/mistakes/sinusoidal.py",
            "diagnosis/compare.py"} <= set(baseline)
    assert not [rel for rel in baseline if "rope" in rel]
    assert manifest.finish({**baseline, "solutions/sinusoidal.py": "0" * 64}, ["sinusoidal"]) == "solutions/sinusoidal.py"
    assert manifest.finish({**baseline, "grading/cases/conftest.py": "0" * 64}, ["sinusoidal"]) == "grading/cases/conftest.py"
