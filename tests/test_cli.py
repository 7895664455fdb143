"""The CLI: init, list, hint, reveal and reset through click's CliRunner on real files in
tmp_path; check through a real child process (it starts a worker process of its own)."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import WRONG, make_workspace, snapshot

from posgrade.kit import catalog, state
from posgrade.cli import main
from posgrade.results import RunResult


def run(*args, input=None, env=None):
    return CliRunner().invoke(main, list(args), input=input, env=env or {"POSGRADE_WORKSPACE": None})


def posgrade(*args, cwd=None):
    """The real command in its own process (CliRunner must not host the grading worker)."""
    env = {k: v for k, v in os.environ.items() if k != "POSGRADE_WORKSPACE"}
    return subprocess.run([sys.executable, "-m", "posgrade", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def stub(name):
    return (state.kit_dir("exercises") / f"{name}.py").read_text()


def test_init_copies_every_stub(tmp_path):
    ws = tmp_path / "work"
    r = run("init", str(ws))
    assert r.exit_code == 0, r.output
    for ex in catalog.EXERCISES:
        assert (ws / ex.file).read_text() == stub(ex.name)
    assert (ws / ".posgrade" / "state.json").is_file()


def test_init_refuses_to_overwrite(tmp_path):
    ws = tmp_path / "work"
    ws.mkdir()
    (ws / "sinusoidal.py").write_text("# my work in progress\n")
    r = run("init", str(ws))
    assert r.exit_code == 0, r.output
    assert "Kept your own sinusoidal.py" in r.output
    assert (ws / "sinusoidal.py").read_text() == "# my work in progress\n"
    before = snapshot(ws)
    again = run("init", str(ws))
    assert again.exit_code == 2 and "nothing was copied" in again.output
    assert snapshot(ws) == before


def test_init_refuses_the_kits_own_folder():
    r = run("init", str(state.kit_dir("exercises")))
    assert r.exit_code == 2 and "kit's own folder" in r.output


def test_reset_backs_up_then_restores_the_stub(tmp_path):
    ws = make_workspace(tmp_path / "ws")  # holds the reference, i.e. "finished work"
    mine = (ws / "learned.py").read_text()
    r = run("reset", "learned", "--workspace", str(ws))
    assert r.exit_code == 0, r.output
    assert (ws / "learned.py").read_text() == stub("learned")
    backups = list((ws / ".posgrade" / "backups").glob("learned-*.py"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    again = run("reset", "learned", "--workspace", str(ws))  # a fresh stub already: no second backup
    assert again.exit_code == 0 and "fresh stub already" in again.output
    assert len(list((ws / ".posgrade" / "backups").glob("learned-*.py"))) == 1


def test_hints_come_one_at_a_time(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    hints = catalog.get("sinusoidal").hints
    first = run("hint", "sinusoidal", "-w", str(ws))
    assert first.exit_code == 0 and hints[0] in first.output and hints[1] not in first.output
    second = run("hint", "sinusoidal", "-w", str(ws))
    assert hints[1] in second.output
    for _ in hints:
        last = run("hint", "sinusoidal", "-w", str(ws))
    assert all(h in last.output for h in hints) and "reveal" in last.output


def test_reveal_asks_first_and_records(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    declined = run("reveal", "learned", "-w", str(ws), input="n\n")
    assert declined.exit_code == 1 and "def position_ids" not in declined.output
    shown = run("reveal", "learned", "-w", str(ws), "--yes")
    assert shown.exit_code == 0
    source = (state.kit_dir("solutions") / "learned.py").read_text().splitlines()
    assert f"1  {source[0]}" in shown.output and f"{len(source)}  {source[-1]}" in shown.output
    st = json.loads((ws / ".posgrade" / "state.json").read_text())["exercises"]["learned"]
    assert st["revealed"] and st["revealed_before_pass"]


def test_list_shows_every_exercise_in_order(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    r = run("list", "-w", str(ws))
    assert r.exit_code == 0
    positions = [r.output.index(f" {name} ") for name in catalog.names()]
    assert positions == sorted(positions) and "not started" in r.output


@pytest.mark.parametrize("args,words", [
    (["check", "sinusoidl"], "did you mean sinusoidal"),
    (["check", "learned", "--all"], "not both"),
    (["hint", "learnd"], "did you mean learned"),
    (["check", "--workspace", "/nonexistent/ws"], "posgrade init"),
    (["check", "--json", "/nonexistent/dir/out.json", "--workspace", "solutions"], "does not exist"),
    (["check", "--device", "tpu"], "Invalid value"),
])
def test_usage_errors_exit_2(args, words):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert words in r.output


def test_default_workspace_is_exercises_under_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POSGRADE_WORKSPACE", raising=False)
    r = CliRunner().invoke(main, ["hint", "batches"])
    assert r.exit_code == 2 and "run `posgrade init`" in r.output
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    assert CliRunner().invoke(main, ["hint", "batches"]).exit_code == 0


def test_check_reference_passes_with_json(tmp_path):
    out = tmp_path / "result.json"
    p = posgrade("check", "sinusoidal", "learned", "--workspace", "solutions", "--seed", "11", "--json", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    result = RunResult.from_dict(json.loads(out.read_text()))
    assert [e.name for e in result.exercises] == ["sinusoidal", "learned"]
    assert result.seed == 11 and result.passed and result.score == result.max_score
    assert RunResult.from_dict(result.to_dict()) == result
    assert "seed 11" in p.stdout and "all graded cases passed" in p.stdout


def test_check_stubs_scores_zero_exit_1(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    p = posgrade("check", "batches", "--workspace", str(ws))
    assert p.returncode == 1, p.stdout + p.stderr
    assert "not implemented yet" in p.stdout and "0.0 / 5" in p.stdout
    if "cuda" not in p.stdout.split("\n")[0]:  # no GPU: the CUDA cases are listed as skipped
        assert "skipped" in p.stdout and "no CUDA device" in p.stdout


def test_check_without_name_grades_first_unpassed_and_records_progress(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    (ws / "batches.py").write_text((state.kit_dir("solutions") / "batches.py").read_text())
    before = {n: (ws / f"{n}.py").read_bytes() for n in catalog.names()}
    first = posgrade("check", "--workspace", str(ws), "--seed", "5")
    assert first.returncode == 0 and "batches" in first.stdout and "sinusoidal" not in first.stdout
    second = posgrade("check", "--workspace", str(ws), "--seed", "5")
    assert second.returncode == 1 and "sinusoidal" in second.stdout and "batches" not in second.stdout
    st = json.loads((ws / ".posgrade" / "state.json").read_text())["exercises"]
    assert st["batches"]["passed"] and st["batches"]["best"] == 5
    assert {n: (ws / f"{n}.py").read_bytes() for n in catalog.names()} == before


def test_check_names_a_wrong_implementation(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py"})
    p = posgrade("check", "sinusoidal", "--workspace", str(ws), "--seed", "2", "--verbose")
    assert p.returncode == 1
    assert "looks like: sin and cos swapped" in p.stdout and "max abs error" in p.stdout
    assert "Reproduce: posgrade check sinusoidal" in p.stdout and "--seed 2" in p.stdout


def test_kit_folders_are_never_written(tmp_path):
    before = snapshot(state.kit_dir("solutions"))
    p = posgrade("check", "batches", "--workspace", "solutions", "--seed", "1")
    assert p.returncode == 0, p.stdout + p.stderr
    after = {k: v for k, v in snapshot(state.kit_dir("solutions")).items() if "__pycache__" not in str(k)}
    assert after == {k: v for k, v in before.items() if "__pycache__" not in str(k)}


def test_missing_exercise_file_says_how_to_add_it(tmp_path):
    ws = make_workspace(tmp_path / "ws", base="exercises")
    (ws / "learned.py").unlink()
    r = run("check", "learned", "-w", str(ws))
    assert r.exit_code == 2 and "has no learned.py" in r.output and "posgrade init" in r.output
    assert run("init", str(ws)).exit_code == 0 and (ws / "learned.py").read_text() == stub("learned")


def test_cuda_without_a_gpu_is_a_usage_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device; the error only exists without one")
    p = posgrade("check", "batches", "--device", "cuda", "--workspace", "solutions")
    assert p.returncode == 2 and "needs a CUDA device" in p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("made,words", [
    (0, "was made by posgrade 0.0.9 (workspace format 0); this posgrade"),
    (99, "newer than this posgrade"),
])
@pytest.mark.parametrize("command", ["check", "watch"])
def test_workspace_of_another_kit_version_is_a_usage_error(tmp_path, made, words, command):
    """A workspace made for another exercise interface is refused before grading, in one line."""
    ws = make_workspace(tmp_path / "ws")
    (ws / ".posgrade").mkdir()
    (ws / ".posgrade" / "state.json").write_text(json.dumps(
        {"kit_version": "0.0.9" if made == 0 else "9.0", "workspace_format": made, "exercises": {}}))
    before = snapshot(ws)
    r = run(command, "sinusoidal", "--workspace", str(ws))
    assert r.exit_code == 2, r.output
    assert words in r.output and len(r.output.strip().splitlines()) == 1
    assert ("posgrade init NEWDIR" in r.output) == (made == 0)
    assert snapshot(ws) == before


def test_workspace_from_this_version_records_its_format(tmp_path):
    assert run("init", str(tmp_path / "w")).exit_code == 0
    data = json.loads((tmp_path / "w" / ".posgrade" / "state.json").read_text())
    assert data["workspace_format"] == state.WORKSPACE_FORMAT and data["kit_version"]
