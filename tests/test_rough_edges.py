"""The rough edges a newcomer hit (issue 17), each tried as a new user would: through click's CliRunner
on real files, or the real command in its own process."""

import json
import os
import re
import subprocess
import sys
import time

from click.testing import CliRunner
from conftest import ROOT, WRONG, grade, make_workspace
from test_watch import Watcher

from posgrade.cli import main
from posgrade.kit import catalog, state
from posgrade.loop import watch
from posgrade.results import CaseResult, ExerciseResult, RunResult


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env or {"POSGRADE_WORKSPACE": None})


def posgrade(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "POSGRADE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "posgrade", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def list_number(name):
    """The number `posgrade list` shows in front of name."""
    out = run("list", "--workspace", "solutions").output
    row = next(ln for ln in out.splitlines() if re.match(rf"\s+\d+\s+{name}\s", ln))
    return row.split()[0]


# -- the kit's own folder ------------------------------------------------------------------------

KIT_NOTE = "the kit's own stub folder"


def test_hint_and_list_in_the_kits_folder_say_so_once(monkeypatch):
    monkeypatch.chdir(ROOT)  # the default ./exercises is then the kit's own stubs
    for _ in range(2):
        r = run("hint", "rope")
        assert r.exit_code == 0 and "Hint 1/" in r.output and "Hint 2/" not in r.output
        assert r.output.count(KIT_NOTE) == 1 and "posgrade init my-work" in r.output
    r = run("list")
    assert r.exit_code == 0 and r.output.count(KIT_NOTE) == 1


def test_check_and_watch_in_the_kits_folder_say_so_once(monkeypatch):
    monkeypatch.delenv("POSGRADE_WORKSPACE", raising=False)
    p = posgrade("check", "batches", "--device", "cpu", cwd=ROOT)
    assert p.returncode == 1 and "not implemented yet" in p.stdout
    assert p.stdout.count(KIT_NOTE) == 1 and "posgrade init my-work" in p.stdout
    w = Watcher(["batches", "--interval", "0.1", "--no-save"])  # runs in ROOT
    try:
        seen = w.wait_for("Reproduce:")
        assert seen.count(KIT_NOTE) == 1  # told at the start, not in every report
    finally:
        w.proc.kill()
        w.proc.wait()


# -- attention is complete without the later alibi ------------------------------------------------

def test_attention_reaches_full_marks_before_alibi(tmp_path):
    alibi_stub = (state.kit_dir("exercises") / "alibi.py").read_text()
    ws = make_workspace(tmp_path / "ws", {"alibi": alibi_stub})
    result = grade(ws, ["attention"], device="cpu")
    (ex,) = result.exercises
    assert ex.passed and ex.score == ex.points, [c.message for c in ex.failures]
    needs = f"needs exercise {catalog.names().index('alibi')} (alibi)"
    skipped = [c for c in ex.cases if c.status == "skipped"]
    assert skipped and all(c.message == needs for c in skipped)
    assert all("alibi" in c.params or "alibi" in c.name for c in skipped)
    done = grade(make_workspace(tmp_path / "done"), ["attention"], device="cpu")
    graded = {c.id for c in done.exercises[0].cases if c.status != "skipped"}
    assert {c.id for c in skipped} <= graded  # with alibi done, the same cases are graded


# -- names, numbers and paths ---------------------------------------------------------------------

def test_list_of_a_missing_workspace_is_a_usage_error(tmp_path):
    r = run("list", "--workspace", str(tmp_path / "nope"))
    assert r.exit_code == 2 and str(tmp_path / "nope") in r.output


def test_workspace_pointing_at_a_file_says_what_to_pass(tmp_path):
    ws = make_workspace(tmp_path / "my-work")
    for command in (["check", "rope"], ["list"], ["hint", "rope"]):
        r = run(*command, "--workspace", str(ws / "rope.py"))
        assert r.exit_code == 2 and "is a file" in r.output and f"--workspace {ws}" in r.output, r.output


def test_min_score_above_the_maximum_is_refused(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    r = run("check", "rope", "--workspace", str(ws), "--min-score", "200")
    points = catalog.get("rope").points
    assert r.exit_code == 2 and f"worth {points:g} points" in r.output
    r = run("check", "--all", "--workspace", str(ws), "--min-score", str(sum(e.points for e in catalog.EXERCISES) + 1))
    assert r.exit_code == 2


def test_names_in_any_case_and_list_numbers(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    number = list_number("batches")
    p = posgrade("check", "RoPE", number, "--workspace", str(ws), "--device", "cpu", "--json", str(tmp_path / "r.json"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert [e["name"] for e in json.loads((tmp_path / "r.json").read_text())["exercises"]] == ["rope", "batches"]
    r = run("check", str(len(catalog.EXERCISES)), "--workspace", str(ws))
    assert r.exit_code == 2 and "no exercise number" in r.output
    r = run("hint", "SINUSOIDAL", "--workspace", str(ws))
    assert r.exit_code == 0 and catalog.get("sinusoidal").hints[0] in r.output


# -- reset -----------------------------------------------------------------------------------------

def test_reset_of_a_fresh_stub_makes_no_backup(tmp_path):
    ws = tmp_path / "ws"
    assert run("init", str(ws)).exit_code == 0
    r = run("reset", "rope", "--workspace", str(ws))
    assert r.exit_code == 0 and "fresh stub already" in r.output
    assert not (ws / ".posgrade" / "backups").exists()


def test_list_after_reset_does_not_say_passed(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    p = posgrade("check", "rope", "--workspace", str(ws), "--device", "cpu")
    assert p.returncode == 0, p.stdout + p.stderr
    row = lambda out: next(ln for ln in out.splitlines() if re.match(r"\s+\d+\s+rope\s", ln))  # noqa: E731
    assert "passed (15)" in row(run("list", "--workspace", str(ws)).output)
    r = run("reset", "rope", "--workspace", str(ws))
    assert r.exit_code == 0 and "Backed up your rope.py" in r.output
    after = row(run("list", "--workspace", str(ws)).output)
    assert "passed" not in after and "reset (best was 15)" in after
    assert not state.Progress(ws).of("rope")["passed"]


# -- the reports: one rounding, the mistake's title, the wall time --------------------------------

def test_html_and_terminal_round_alike_and_the_wall_time_is_printed(tmp_path):
    from posgrade.diagnosis import mistakes

    ws = make_workspace(tmp_path / "ws", {"rope": WRONG / "rope" / "cos_sin_swapped.py"})
    t0 = time.perf_counter()
    p = posgrade("check", "rope", "--workspace", str(ws), "--seed", "1", "--device", "cpu",
                 "--html", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json"))
    wall = time.perf_counter() - t0
    assert p.returncode == 1, p.stdout + p.stderr
    exact = json.loads((tmp_path / "r.json").read_text())["score"]
    assert round(exact, 1) != exact  # a score that needs rounding (15 * the passed share)
    term = re.search(r"^Score (\S+) / 15 · (\S+) s \(cases (\S+) s\)", p.stdout, re.M)
    assert term, p.stdout
    html = (tmp_path / "r.html").read_text()
    header = re.search(r"score <b>(\S+)</b> / 15", html).group(1)
    assert float(header) == float(term.group(1)) == round(exact, 1)
    assert f"{exact:g}" not in html  # the unrounded score appears nowhere
    title = mistakes.get("rope", "cos_sin_swapped").title
    assert f"Known mistake: <b>{title}</b>" in html and "<code>cos_sin_swapped</code>" not in html
    shown, cases = float(term.group(2)), float(term.group(3))
    assert cases < shown <= wall + 0.05 and shown > 0.5 * wall  # the time the learner waited


# -- watch -------------------------------------------------------------------------------------------

def case(n, status, kind="wrong", message=None):
    return CaseResult(id=f"rope::{n}", exercise="rope", name=n, title=f"title {n}", params="", device="", points=1.0,
                      score=1.0 if status == "passed" else 0.0, status=status, kind="" if status == "passed" else kind,
                      message=message or ("" if status == "passed" else f"{n} is wrong\nthe detail of {n}"))


def result(cases):
    return RunResult("ws", 1, ["cpu"], [ExerciseResult("rope", "RoPE", 15, sum(c.score for c in cases),
                                                       len(cases), cases)])


def test_watch_explains_the_first_new_failure_under_its_own_line():
    before = result([case(f"c{i}", "passed") for i in range(8)])
    after = result([case(f"c{i}", "failed") for i in range(8)])
    lines = watch.changes(before, after)
    first = lines.index("  ✗ now fails: title c0")
    assert lines[first + 1] == "      c0 is wrong" and lines[first + 2] == "      the detail of c0"
    assert lines[first + 3] == "  ✗ now fails: title c1"
    assert lines[-1] == "  ✗ now fails: 3 more cases"  # and nothing explained under the count


def drain(w, quiet=1.5):
    """The watcher's output until it has been quiet for `quiet` seconds."""
    import queue

    got = []
    while True:
        try:
            line = w.lines.get(timeout=quiet)
        except queue.Empty:
            return "".join(got)
        if line is None:
            return "".join(got)
        got.append(line)


def test_watch_regrades_only_the_changed_exercise_once_all_passed(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    progress = state.Progress(ws)
    for ex in catalog.EXERCISES:  # a learner who has passed everything
        progress.of(ex.name).update(best=float(ex.points), max=ex.points, passed=True)
    progress.save()
    w = Watcher(["--workspace", str(ws), "--seed", "2", "--interval", "0.1", "--no-save"])
    try:
        first = w.wait_for("every graded case passes", timeout=120)
        assert all(f" {ex.name} " in first for ex in catalog.EXERCISES)  # the first run: every exercise
        time.sleep(0.5)
        (ws / "rope.py").write_text((WRONG / "rope" / "cos_sin_swapped.py").read_text())
        report = w.wait_for("Reproduce:", timeout=60)
        graded = re.findall(r"^\s+[✓✗] (\w+)\s+\d", report, re.M)
        assert graded == ["rope"], report
        assert "posgrade check rope" in report
        time.sleep(0.5)
        (ws / "rope.py").write_text("def apply_rope(x:\n")  # a syntax error
        broken = w.wait_for("could not be imported", timeout=60)
        broken += drain(w)
        assert broken.count("could not be imported") == 1 and "SyntaxError" in broken, broken
        assert "now fails:" not in broken and "fails differently:" not in broken  # no case titles
        time.sleep(0.5)
        (ws / "rope.py").write_text((WRONG / "rope" / "cos_sin_swapped.py").read_text())
        lines = (w.wait_for("fails differently:", timeout=60) + drain(w)).splitlines()
        first = next(i for i, ln in enumerate(lines) if "fails differently:" in ln)
        assert lines[first + 1].startswith("      ") and lines[first + 1].strip(), lines  # explained right under it
        more = [i for i, ln in enumerate(lines) if re.search(r"fails differently: \d+ more case", ln)]
        assert all(i + 1 == len(lines) or not lines[i + 1].startswith("      ") for i in more), lines
    finally:
        w.proc.kill()
        w.proc.wait()
