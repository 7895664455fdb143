"""grade-batch: a generated class of 23 submissions (correct copies of solutions/, real wrong
implementations from tests/wrong/, hostile files from tests/hostile/ that crash, exit, fail to
import and hang, a fresh stub, an empty folder, a nested repository) graded in parallel with
a short time-out; the class CSV, JSON and HTML are read back with csv, json and html.parser."""

import csv
import html.parser
import json
import os
import subprocess
import sys

import pytest
from conftest import HOSTILE, WRONG, make_workspace, snapshot

from posgrade.classroom import batch
from posgrade.kit import catalog
from posgrade.classroom.batch import Row

FULL = catalog.get("sinusoidal").points
CORRECT = [f"correct{i}" for i in range(5)] + ["=HYPERLINK(1)"]  # a name a spreadsheet would run
WRONG_FILES = sorted((WRONG / "sinusoidal").glob("*.py"))[:6]
CRASHING = {"crash-segfault": "segfault.py", "crash-exit-at-import": "exit_at_import.py",
            "crash-raise-at-import": "raise_at_import.py", "crash-syntax": "syntax_error.py"}
HANGING = {"hang-in-call": "loop_in_call.py", "hang-at-import": "loop_at_import.py"}


def build_class(root):
    for name in CORRECT:
        make_workspace(root / name)
    for path in WRONG_FILES:
        make_workspace(root / f"wrong-{path.stem}", {"sinusoidal": path})
    for name, file in {**CRASHING, **HANGING}.items():
        make_workspace(root / name, {"sinusoidal": HOSTILE / file})
    make_workspace(root / "stub", base="exercises")
    make_workspace(root / "nested-repo" / "src" / "exercises")  # a whole repository, files two levels down
    (root / "nested-repo" / "README.md").write_text("my repo\n")
    (root / "empty").mkdir()
    make_workspace(root / "<i>html")
    return sorted(p.name for p in root.iterdir())


def posgrade(*args, timeout=600, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    return subprocess.run([sys.executable, "-m", "posgrade", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    students = build_class(tmp / "class")
    before = snapshot(tmp / "class")
    p = posgrade("grade-batch", str(tmp / "class"), "-e", "sinusoidal", "--jobs", "2", "--timeout", "0.5",
                 "--seed", "3", "--out", str(tmp / "out"))
    return p, students, tmp, before


def test_every_submission_gets_a_row_and_progress_is_shown(graded_class):
    p, students, tmp, before = graded_class
    assert p.returncode == 0, p.stdout + p.stderr
    assert len(students) >= 20
    progress = [ln for ln in p.stderr.splitlines() if ln.startswith("[")]
    assert len(progress) == len(students) and progress[-1].startswith(f"[{len(students)}/{len(students)}]")
    with open(tmp / "out" / "class.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["student"].removeprefix("'") for r in rows] == students
    assert rows[[r["student"] for r in rows].index("'=HYPERLINK(1)")]  # shown as text, never as a formula
    assert set(rows[0]) == {"student", "sinusoidal", "total", "max_score", "status", "errors",
                            "revealed_before_pass", "seconds"}
    assert snapshot(tmp / "class") == before  # nothing was written into the submissions


def test_scores_and_errors_per_kind_of_submission(graded_class):
    p, students, tmp, _ = graded_class
    doc = json.loads((tmp / "out" / "class.json").read_text())
    by = {s["student"]: s for s in doc["submissions"]}
    for name in CORRECT + ["nested-repo", "<i>html"]:
        assert by[name]["status"] == "pass" and by[name]["total"] == FULL, by[name]
    assert by["nested-repo"]["workspace"].endswith(os.path.join("src", "exercises"))
    for path in WRONG_FILES:
        row = by[f"wrong-{path.stem}"]
        assert row["status"] == "fail" and 0 < row["total"] < FULL, row
    for name in CRASHING:
        row = by[name]
        assert row["total"] == 0 and row["errors"], row
    assert any("crash" in e for e in by["crash-segfault"]["errors"])
    assert any("import" in e for e in by["crash-syntax"]["errors"] + by["crash-raise-at-import"]["errors"])
    for name in HANGING:
        assert by[name]["total"] == 0 and any("longer than 0.5 s" in e for e in by[name]["errors"]), by[name]
    assert by["stub"]["total"] == 0 and by["stub"]["not_started"] == ["sinusoidal"] and not by["stub"]["errors"]
    assert by["empty"]["total"] == 0 and any("no sinusoidal.py" in e for e in by["empty"]["errors"])
    stats = doc["statistics"]
    assert stats["submissions"] == len(students) and sum(b["count"] for b in stats["distribution"]) == len(students)
    top, bottom = stats["distribution"][-1], stats["distribution"][0]
    assert top["count"] == sum(s["total"] >= top["from"] for s in doc["submissions"]) >= len(CORRECT)
    assert bottom["count"] == sum(s["total"] < bottom["to"] for s in doc["submissions"])
    results = sorted(p.name for p in (tmp / "out" / "results").glob("*.json"))
    assert len(results) == len(students)


def test_common_mistakes_name_the_cases_that_catch_them(graded_class):
    _, _, tmp, _ = graded_class
    import re

    stats = json.loads((tmp / "out" / "class.json").read_text())["statistics"]
    mistakes = {m["case"]: m for m in stats["common_mistakes"]}
    for path in WRONG_FILES:
        caught = re.search(r"^Caught by: (test_\w+)", path.read_text(), re.M).group(1)
        assert f"sinusoidal::{caught}" in mistakes or len(mistakes) == 10, (caught, list(mistakes))
    top = stats["common_mistakes"][0]
    assert top["title"] and top["example"] and top["students"] >= 1


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_html_overview_parses_and_escapes_names(graded_class):
    _, students, tmp, _ = graded_class
    page = (tmp / "out" / "class.html").read_text()
    parser = _Text()
    parser.feed(page)
    text = " ".join(parser.text)
    assert "Score distribution" in text and "Most common mistakes" in text
    assert "<i>html" in text  # the folder name shows as text ...
    assert "&lt;i&gt;html" in page and "i" not in parser.tags  # ... not as markup
    for name in students:
        assert name in text


def test_a_submission_over_its_wall_clock_limit_is_stopped_and_others_go_on(tmp_path):
    make_workspace(tmp_path / "class" / "slow", {"sinusoidal": HOSTILE / "loop_in_call.py"})
    make_workspace(tmp_path / "class" / "fine")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "test_private_rows.py").write_text(
        'from posgrade.grading.casekit import points\nfrom posgrade.diagnosis.compare import assert_close\n\nEXERCISE = "sinusoidal"\n\n\n'
        '@points(2)\ndef test_private_rows(learner, ref):\n    """a private case"""\n'
        '    assert_close(learner.sinusoidal_table(5, 4), ref.sinusoidal_table(5, 4))\n')
    p = posgrade("grade-batch", "class", "-e", "sinusoidal", "--timeout", "60", "--limit", "8",  # a relative path
                 "--jobs", "2", "--seed", "1", "--cases", "private", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads((tmp_path / "class-grades" / "class.json").read_text())
    by = {s["student"]: s for s in doc["submissions"]}
    assert by["fine"]["total"] == FULL and by["fine"]["status"] == "pass"
    assert by["slow"]["status"] == "error" and "longer than 8 s" in by["slow"]["errors"][0]
    fine = json.loads((tmp_path / "class-grades" / "results" / "fine.json").read_text())
    assert [c["status"] for c in fine["exercises"][0]["cases"] if c["private"]] == ["passed"]


def test_usage_errors(tmp_path):
    make_workspace(tmp_path / "one")
    p = posgrade("grade-batch", str(tmp_path / "one"))
    assert p.returncode == 2 and "one workspace" in p.stderr
    (tmp_path / "none").mkdir()
    p = posgrade("grade-batch", str(tmp_path / "none"))
    assert p.returncode == 2 and "no submission folders" in p.stderr
    p = posgrade("grade-batch", str(tmp_path), "-e", "sinusoidl")
    assert p.returncode == 2 and "did you mean sinusoidal" in p.stderr


# -- pieces, without grading -----------------------------------------------------------------

def test_locate_workspace_prefers_the_folder_with_most_exercise_files(tmp_path):
    (tmp_path / "a" / "notes").mkdir(parents=True)
    (tmp_path / "a" / "notes" / "rope.py").write_text("")
    make_workspace(tmp_path / "a" / "deep" / "exercises")
    ws, n = batch.locate_workspace(tmp_path / "a")
    assert ws == tmp_path / "a" / "deep" / "exercises" and n == len(catalog.EXERCISES)
    (tmp_path / "b").mkdir()
    assert batch.locate_workspace(tmp_path / "b") == (tmp_path / "b", 0)


def test_statistics_bins_and_csv_cells():
    rows = [Row("a", "/a", "pass", {"batches": 5.0}, 5.0, 5.0), Row("b", "/b", "fail", {"batches": 2.4}, 2.4, 5.0),
            Row("c", "/c", "error", {"batches": 0.0}, 0.0, 5.0, errors=["-1 + 1"], failed_cases=["batches::test_x"])]
    stats = batch.statistics(rows, ["batches"])
    assert [b["count"] for b in stats["distribution"]] == [1, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert stats["median"] == 2.4 and stats["errors"] == 1 and stats["common_mistakes"][0]["students"] == 1
    text = batch.class_csv(rows, ["batches"])
    assert "'-1 + 1" in text
