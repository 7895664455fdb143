"""The instructor's side: `posgrade ci github|gradescope` files (the workflow parsed as YAML and
its grading step run here as Actions would run it; Gradescope's scripts run against a fake
/autograder tree), the README showing those templates as written, and private cases
(`--cases`), starting from the worked example in the README."""

import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import ROOT, WRONG, make_workspace
from test_formats import GRADESCOPE_SCHEMA, reporter_read, validate

import posgrade
from posgrade.kit import catalog
from posgrade.classroom import ci, instructor
from posgrade.cli import main
from posgrade.results import RunResult

README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def cli(*args):
    return CliRunner().invoke(main, list(args), env={"POSGRADE_WORKSPACE": None})


def readme_block(lang, starts_with=""):
    blocks = re.findall(rf"```{lang}\n(.*?)```", README, re.S)
    found = [b for b in blocks if b.startswith(starts_with)]
    assert found, f"README has no ```{lang} block starting with {starts_with!r}"
    return found[0]


@pytest.fixture
def example_cases(tmp_path):
    """The README's worked example of a private case file, as an instructor would save it."""
    folder = tmp_path / "cases"
    folder.mkdir()
    (folder / "test_private_sinusoidal.py").write_text(readme_block("python", "# cases/test_private_sinusoidal.py"))
    return folder


def steps_by(workflow):
    job = workflow["jobs"]["run-autograding-tests"]
    return job, job["steps"]


# -- GitHub Classroom ------------------------------------------------------------------------

def test_github_workflow_has_the_steps_classroom_needs(tmp_path):
    r = cli("ci", "github", "--out", str(tmp_path), "-e", "sinusoidal", "--timeout", "2", "--torch", "2.4.1")
    assert r.exit_code == 0, r.output
    wf = yaml.safe_load((tmp_path / ".github" / "workflows" / "classroom.yml").read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers and wf["permissions"] == {"checks": "write", "actions": "read", "contents": "read"}
    job, steps = steps_by(wf)
    assert job["runs-on"] == "ubuntu-latest" and "github-classroom[bot]" in job["if"]
    uses = [s.get("uses", "") for s in steps]
    assert uses[0].startswith("actions/checkout@") and uses[1].startswith("actions/setup-python@")
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert "--index-url https://download.pytorch.org/whl/cpu" in install["run"] and '"torch==2.4.1"' in install["run"]
    assert "-c .github/posgrade-constraints.txt" in install["run"]
    assert (tmp_path / ".github" / "posgrade-constraints.txt").read_text().strip().endswith("torch==2.4.1")
    grade = next(s for s in steps if s.get("id") == "posgrade")
    assert "posgrade check sinusoidal" in grade["run"] and "--format github" in grade["run"]
    assert "--min-score 0" in grade["run"] and "--timeout 2 " in grade["run"]
    reporter = next(s for s in steps if "autograding-grading-reporter" in s.get("uses", ""))
    assert steps.index(install) < steps.index(grade) < steps.index(reporter)
    runners = reporter["with"]["runners"]
    assert re.fullmatch(r"([a-zA-Z0-9]+,)*[a-zA-Z0-9]+", runners)  # the reporter's own check of its input
    for runner in runners.split(","):
        assert reporter["env"][f"{runner.upper()}_RESULTS"] == f"${{{{ steps.{runner}.outputs.result }}}}"
    assert "cancelled()" in reporter["if"]  # reports even when grading itself failed
    again = cli("ci", "github", "--out", str(tmp_path))
    assert again.exit_code == 2 and "--force" in again.output


def test_github_grading_step_runs_as_actions_runs_it(tmp_path):
    repo = tmp_path / "repo"
    make_workspace(repo / "exercises", {"sinusoidal": WRONG / "sinusoidal" / "row_zero_zeroed.py"})
    assert cli("ci", "github", "--out", str(repo), "-e", "sinusoidal", "-e", "batches").exit_code == 0
    _, steps = steps_by(yaml.safe_load((repo / ".github" / "workflows" / "classroom.yml").read_text()))
    grade = next(s for s in steps if s.get("id") == "posgrade")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", GITHUB_ACTIONS="true",
               GITHUB_OUTPUT=str(tmp_path / "output"), GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    p = subprocess.run(["bash", "-e", "-c", grade["run"]], cwd=repo, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr  # the reporter, not this step, fails the job
    results, points = reporter_read((tmp_path / "output").read_text())
    full = catalog.get("sinusoidal").points + catalog.get("batches").points
    assert results["status"] == "fail" and results["max_score"] == full
    assert catalog.get("batches").points < points < full
    assert (repo / "posgrade-junit.xml").is_file() and "## posgrade" in (tmp_path / "summary.md").read_text()


# -- Gradescope ------------------------------------------------------------------------------

def test_gradescope_files_zip_and_run_autograder(tmp_path, example_cases):
    vis = tmp_path / "visibility.toml"
    vis.write_text('default = "visible"\n[cases]\n"sinusoidal::test_long_table" = "hidden"\n')
    out, zipped = tmp_path / "autograder-files", tmp_path / "autograder.zip"
    r = cli("ci", "gradescope", "--out", str(out), "--zip", str(zipped), "--cases", str(example_cases),
            "--visibility", str(vis), "-e", "sinusoidal", "--timeout", "2")
    assert r.exit_code == 0, r.output
    wheel = f"posgrade-{posgrade.__version__}-py3-none-any.whl"  # built from this checkout and bundled
    assert f"bundled {wheel} (built from the checkout at {ROOT})" in r.output
    expected = {"setup.sh", "run_autograder", "constraints.txt", "README.txt", "visibility.json",
                "cases/test_private_sinusoidal.py", wheel}
    with zipfile.ZipFile(out / wheel) as w:  # a real wheel of this source: the hidden cases are in it
        assert "posgrade/grading/cases/test_sinusoidal.py" in w.namelist()
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == expected
    for script in ("setup.sh", "run_autograder"):
        assert os.stat(out / script).st_mode & stat.S_IXUSR
        assert subprocess.run(["bash", "-n", str(out / script)]).returncode == 0
    with zipfile.ZipFile(zipped) as z:
        assert set(z.namelist()) == expected  # at the top of the zip, no folder around them
        assert (z.getinfo("run_autograder").external_attr >> 16) & 0o111
    setup = (out / "setup.sh").read_text()
    assert "download.pytorch.org/whl/cpu" in setup and '-c "$AG/source/constraints.txt"' in setup
    assert json.loads((out / "visibility.json").read_text())["cases"] == {"sinusoidal::test_long_table": "hidden"}

    # run_autograder against a fake /autograder tree, with posgrade from this environment
    fake = tmp_path / "fake"
    (fake / "autograder").mkdir(parents=True)
    with zipfile.ZipFile(zipped) as z:
        z.extractall(fake / "autograder" / "source")
    make_workspace(fake / "autograder" / "submission" / "my-repo" / "exercises",
                   {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    # the documented rehearsal switches: the bundle's /autograder and /opt/posgrade moved
    env.update(POSGRADE_AUTOGRADER_DIR=str(fake / "autograder"), POSGRADE_PREFIX=str(BIN.parent))
    p = subprocess.run(["bash", str(fake / "autograder" / "source" / "run_autograder")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    # Gradescope may show this stdout to students (stdout_visibility): no case is named in it
    assert "test_long_table" not in p.stdout and "sinusoidal" not in p.stdout and "results.json" in p.stdout
    results = json.loads((fake / "autograder" / "results" / "results.json").read_text())
    validate(results, GRADESCOPE_SCHEMA)
    tests = {t["extra_data"]["id"]: t for t in results["tests"]}
    assert tests["sinusoidal::test_long_table"]["visibility"] == "hidden"
    private = {k: t for k, t in tests.items() if "private" in t["tags"]}
    assert private and all(t["visibility"] == instructor.DEFAULT_PRIVATE_VISIBILITY for t in private.values())
    assert tests["sinusoidal::test_private_table_sizes[100-10]"]["status"] == "failed"  # private cases catch it too
    assert 0 < results["score"] < catalog.get("sinusoidal").points
    assert "Score" not in results["output"]  # while some cases are hidden, the summary shows no total


def test_gradescope_bundles_a_local_posgrade_package(tmp_path):
    wheel = tmp_path / "posgrade-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    out = tmp_path / "ag"
    r = cli("ci", "gradescope", "--out", str(out), "--install", str(wheel))
    assert r.exit_code == 0 and f"bundled {wheel.name} (given with --install: {wheel})" in r.output
    assert (out / wheel.name).read_bytes() == b"not really a wheel"
    assert f'"$AG/source/{wheel.name}"' in (out / "setup.sh").read_text()


def test_github_bundles_the_wheel_and_installs_from_it(tmp_path):
    r = cli("ci", "github", "--out", str(tmp_path), "-e", "rope")
    assert r.exit_code == 0, r.output
    wheels = list((tmp_path / ".github" / "posgrade").glob("posgrade-*.whl"))
    assert len(wheels) == 1 and f"bundled {wheels[0].name}" in r.output
    _, steps = steps_by(yaml.safe_load((tmp_path / ".github" / "workflows" / "classroom.yml").read_text()))
    install = next(s for s in steps if "pip install" in s.get("run", ""))
    assert f"-c .github/posgrade-constraints.txt .github/posgrade/{wheels[0].name}" in install["run"]
    assert "posgrade==" not in install["run"]  # not on PyPI: a requirement would fail on the class's CI


def test_a_pip_requirement_is_used_as_given(tmp_path):
    spec = "posgrade @ git+https://github.com/example/posgrade@v0.1.0"
    r = cli("ci", "github", "--out", str(tmp_path), "--install", spec)
    assert r.exit_code == 0 and f"pip installs {spec} as given" in r.output
    assert not (tmp_path / ".github" / "posgrade").exists()
    assert f'"{spec}"' in (tmp_path / ".github" / "workflows" / "classroom.yml").read_text()


def test_ci_files_are_refused_when_there_is_nothing_to_bundle(tmp_path, monkeypatch):
    """Installed from a package (no checkout) and no --install: refuse at generation time, naming
    the option, rather than write files that fail later on the class's CI."""
    monkeypatch.setattr(ci, "kit_checkout", lambda: None)
    for command in (["github", "--out", str(tmp_path / "gh")], ["gradescope", "--out", str(tmp_path / "gs")]):
        r = cli("ci", *command)
        assert r.exit_code == 2 and "--install PATH/TO/posgrade-" in r.output, r.output
        assert not any((tmp_path).rglob("*.yml")) and not (tmp_path / "gs").exists()
    missing = cli("ci", "gradescope", "--out", str(tmp_path / "gs"), "--install", str(tmp_path / "nope.whl"))
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_readme_shows_the_ci_templates_as_posgrade_writes_them():
    opts = ci.CIOptions(torch="2.13.0", bundle=Path(f"posgrade-{posgrade.__version__}-py3-none-any.whl"))
    assert readme_block("yaml", "# posgrade autograding") == ci.github_files(opts)[".github/workflows/classroom.yml"]
    files = ci.gradescope_files(opts)
    assert files["setup.sh"] in README and files["run_autograder"] in README


# -- private cases ---------------------------------------------------------------------------

def test_readme_private_cases_graded_like_built_in_ones(tmp_path, example_cases):
    out = tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    p = subprocess.run([sys.executable, "-m", "posgrade", "check", "sinusoidal", "-w", "solutions", "--cases",
                        str(example_cases), "--seed", "4", "--json", str(out)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads(out.read_text())
    result = RunResult.from_dict(doc)
    (ex,) = result.exercises
    private = [c for c in ex.cases if c.private]
    assert {c.name for c in private} == {"test_private_table_sizes", "test_private_module_offset"}
    assert all(c.status in ("passed", "skipped") for c in private) and ex.score == ex.points
    assert sum(c.points for c in private if c.status == "passed") == 3 * 2 + 2  # counted in the exercise's points
    assert ex.graded == sum(c.points for c in ex.cases if c.status != "skipped")
    assert "all cases passed" in doc["summary"] and "public" not in doc["summary"]


@pytest.mark.parametrize("source,words", [
    ('def test_private_x(learner):\n    """x"""\n', "does not say which exercise"),
    ('EXERCISE = "sinusoidl"\n\ndef test_private_x(learner):\n    """x"""\n', "is not an exercise"),
    ('EXERCISE = "sinusoidal"\n\ndef test_row_zero(learner):\n    """x"""\n', "also a built-in case"),
    ('EXERCISE = "sinusoidal"\n\ndef test_private_x(learner)\n', "syntax error"),
    ('EXERCISE = "sinusoidal"\n', "defines no test function"),
])
def test_private_case_files_are_checked_before_grading(tmp_path, source, words):
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "test_mine.py").write_text(source)
    with pytest.raises(instructor.InstructorError, match=words):
        instructor.load_case_files(tmp_path / "cases")
    r = cli("check", "sinusoidal", "-w", "solutions", "--cases", str(tmp_path / "cases"))
    assert r.exit_code == 2 and words in r.output


def test_same_case_in_two_private_files_is_refused(tmp_path):
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text('EXERCISE = "learned"\n\ndef test_private_same(learner):\n    """x"""\n')
    with pytest.raises(instructor.InstructorError, match="defined in both"):
        instructor.load_case_files(tmp_path)
