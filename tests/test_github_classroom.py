"""GitHub Classroom as its reporter really receives our result: ONE environment variable (Linux caps
one at 131,072 bytes), statuses as the reporter reads them, and a parseable result in every ending,
a SIGKILL of posgrade and an unknown exercise included."""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import HOSTILE, WRONG, make_workspace
from test_formats import GITHUB_SCHEMA, posgrade, reporter_read, validate

from posgrade.kit import catalog, state

MAX_ARG_STRLEN = 131072  # Linux's cap on one environment string ("NAME=value")
TARGET = 100_000  # posgrade's own bound for `result=`, well below the cap

LOUD = '''

_quiet_table = sinusoidal_table


def sinusoidal_table(*args, **kwargs):
    print("a learner's debugging output, line after line " * 40)
    raise RuntimeError("half-way through: " + "the learner's long message " * 60)
'''


def half_done(path):
    """Half the exercises finished, the others wrong or unfinished, with long printed output."""
    names = catalog.names()
    files = {n: state.kit_dir("exercises") / f"{n}.py" for n in names[len(names) // 2:]}
    files["sinusoidal"] = (WRONG / "sinusoidal" / "sin_cos_swapped.py").read_text() + LOUD
    files["learned"] = HOSTILE / "syntax_error.py"
    return make_workspace(path, files)


@pytest.mark.parametrize("which", ["stubs", "half-done", "solutions"])
def test_the_result_fits_one_environment_variable_whatever_the_work(tmp_path, which):
    if which == "stubs":
        ws = make_workspace(tmp_path / "ws", base="exercises")
    elif which == "half-done":
        ws = half_done(tmp_path / "ws")
    else:
        ws = make_workspace(tmp_path / "ws")
    out = tmp_path / "gh.txt"
    p = posgrade("check", "--all", "-w", str(ws), "--seed", "3", "--min-score", "0", "--format", "github",
                 "--output", str(out), "--format", "junit", "--output", str(tmp_path / "junit.xml"),
                 env={"GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md")})
    assert p.returncode == 0, p.stdout + p.stderr
    line = out.read_text().strip()
    size = len(line.encode())
    print(f"{which}: result= is {size} bytes")
    assert size < TARGET and len(f"POSGRADE_RESULTS={line.removeprefix('result=')}") < MAX_ARG_STRLEN
    results, points = reporter_read(out.read_text())
    validate(results, GITHUB_SCHEMA)
    assert results["max_score"] == sum(e.points for e in catalog.EXERCISES)
    assert len(results["tests"]) == len(catalog.EXERCISES)  # one test per exercise
    # the points the reporter sends are the sum of the exercises' scores, as the terminal says
    json_scores = {t["name"].split(" · ")[0]: t["score"] for t in results["tests"]}
    if which == "solutions":
        assert results["status"] == "pass" and points == results["max_score"]
    else:
        assert results["status"] == "fail" and points < results["max_score"]
        # a learner's import failure, unfinished stub or wrong answer is "fail", never "error"
        statuses = {t["name"].split(" · ")[0]: t["status"] for t in results["tests"]}
        assert statuses["learned"] == statuses[catalog.names()[-1]] == "fail"
        assert "error" not in statuses.values()
    if which == "half-done":
        assert json_scores["batches"] == catalog.get("batches").points
        learned = next(t for t in results["tests"] if t["name"].startswith("learned"))
        assert "could not be imported" in learned["message"]
        assert "debugging output" not in out.read_text()  # learner output is in the JUnit artifact instead
        assert "debugging output" in (tmp_path / "junit.xml").read_text()


def test_a_run_killed_with_sigkill_leaves_a_parseable_error_result(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "loop_in_call.py"})
    out = tmp_path / "gh.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSGRADE_", "GITHUB_"))}
    proc = subprocess.Popen([sys.executable, "-m", "posgrade", "check", "--all", "-w", str(ws), "--format",
                             "github", "--output", str(out), "--timeout", "30"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "result=" not in (out.read_text() if out.exists() else ""):
        time.sleep(0.05)
    time.sleep(0.5)  # grading has started by now
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    results, points = reporter_read(out.read_text())  # exactly one result= line, and it parses
    validate(results, GITHUB_SCHEMA)
    assert results["status"] == "error" and points == 0
    assert results["max_score"] == sum(e.points for e in catalog.EXERCISES)  # 0 of the real maximum
    assert "did not finish" in results["tests"][0]["message"]


def test_an_unknown_exercise_still_gives_a_result_with_the_real_maximum(tmp_path):
    out = tmp_path / "gh.txt"
    p = posgrade("check", "ropee", "-w", "solutions", "--format", "github", "--output", str(out))
    assert p.returncode == 2 and "did you mean rope" in p.stderr
    results, points = reporter_read(out.read_text())
    assert results["status"] == "error" and points == 0 and results["max_score"] > 0
    assert "did you mean rope" in results["tests"][0]["message"]


def test_a_finished_run_replaces_its_provisional_line_and_keeps_other_outputs(tmp_path):
    out = tmp_path / "gh.txt"
    out.write_text("earlier=kept\n")
    p = posgrade("check", "batches", "-w", "solutions", "--format", "github", "--output", str(out))
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "earlier=kept" and len([ln for ln in lines if ln.startswith("result=")]) == 1
    results = json.loads(base64.b64decode(lines[-1].removeprefix("result=")))
    assert results["status"] == "pass"


def test_a_case_the_grader_itself_fails_makes_the_run_an_error_not_a_grade(tmp_path):
    """As with the broken wheel of issue 11 (every case a 'grader error'): the grader failed, so every
    consumer must read "error", not a learner's "fail"."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "test_private_broken.py").write_text(
        'EXERCISE = "batches"\n\n\ndef test_private_lookup(learner):\n    """a case with a bug of its own"""\n'
        '    {}["weight"]\n')
    out, js = tmp_path / "gh.txt", tmp_path / "r.json"
    p = posgrade("check", "batches", "-w", "solutions", "--cases", str(cases), "--format", "github",
                 "--output", str(out), "--json", str(js))
    assert p.returncode == 1
    results, points = reporter_read(out.read_text())
    assert results["status"] == "error" and points == 0
    assert "the grader itself failed on 1 case" in results["tests"][0]["message"]
    assert json.loads(js.read_text())["status"] == "error"


def test_a_not_sandboxed_run_says_so_in_the_classroom_formats(tmp_path):
    """issue 13: where learner code ran without the sandbox, every result says so."""
    out, junit = tmp_path / "gh.txt", tmp_path / "j.xml"
    p = posgrade("check", "batches", "-w", "solutions", "--format", "github", "--output", str(out),
                 "--format", "junit", "--output", str(junit), env={"POSGRADE_SANDBOX": "off"})
    assert p.returncode == 0, p.stderr
    results, _ = reporter_read(out.read_text())
    assert "not sandboxed" in results["message"] and "not sandboxed" in results["tests"][0]["message"]
    assert 'name="note" value="learner code was not sandboxed' in junit.read_text()
