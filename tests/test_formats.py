"""Classroom result formats, each read back by a real consumer: Gradescope's results.json and
Exercism's results.json against JSON Schemas written from their documentation (FORMATS.md),
JUnit XML through junitparser, the GitHub Classroom line decoded and summed the way the
autograding reporter does it, posgrade's own JSON against its published schema.

Unit tests build RunResults by hand; a few end-to-end tests run the real command in a child
process (it starts a worker of its own) on workspaces with wrong, printing, hanging and
crashing code, and on a grader that cannot run its cases."""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import HOSTILE, WRONG, make_workspace
from junitparser import Error, Failure, JUnitXml, Skipped

from posgrade.kit import catalog, state
from posgrade.reporting import formats
from posgrade.classroom import instructor
from posgrade.cli import main
from posgrade.results import CaseResult, ExerciseResult, RunResult

# -- consumers' schemas ----------------------------------------------------------------------

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
TEXT_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}

# Gradescope results.json, from gradescope/autograder_samples docs/specs.md (FORMATS.md 2.1):
# every key optional except that a score must exist at the top or in every test; no other keys.
GRADESCOPE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": TEXT_FORMAT,
        "test_output_format": TEXT_FORMAT,
        "test_name_format": TEXT_FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "score": {"type": "number"},
                "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string"},
                "name_format": TEXT_FORMAT,
                "number": {"type": "string"},
                "output": {"type": "string"},
                "output_format": TEXT_FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": VISIBILITY,
                "extra_data": {"type": "object"},
            },
        }},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {"type": ["number", "string"]},
                           "order": {"enum": ["asc", "desc"]}}}},
    },
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}},
    ],
}

# Exercism test-runner results.json (exercism/docs building/tooling/test-runners/interface.md, FORMATS.md 2.2)
EXERCISM_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["version", "status"],
    "properties": {
        "version": {"const": 3},
        "status": {"enum": ["pass", "fail", "error"]},
        "message": {"type": ["string", "null"], "maxLength": 65535},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "status"],
            "properties": {
                "name": {"type": "string"},
                "test_code": {"type": "string"},
                "status": {"enum": ["pass", "fail", "error"]},
                "message": {"type": ["string", "null"]},
                "output": {"type": ["string", "null"], "maxLength": 500},
                "task_id": {"type": "integer", "minimum": 0},
            },
            "allOf": [{"if": {"properties": {"status": {"enum": ["fail", "error"]}}},
                       "then": {"required": ["message"], "properties": {"message": {"type": "string"}}}}],
        }},
    },
    "allOf": [
        {"if": {"properties": {"status": {"const": "error"}}},
         "then": {"required": ["message"], "properties": {"message": {"type": "string", "minLength": 1}}}},
        {"if": {"properties": {"status": {"enum": ["pass", "fail"]}}}, "then": {"required": ["tests"]}},
    ],
}

# What classroom-resources/autograding-grading-reporter reads from each runner (FORMATS.md 2.3)
GITHUB_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "max_score", "tests"],
    "properties": {
        "version": {"type": "integer"},
        "status": {"enum": ["pass", "fail", "error"]},
        "max_score": {"type": "number", "exclusiveMinimum": 0},
        "tests": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "status", "score", "message", "test_code", "filename", "line_no", "duration"],
            "properties": {
                "name": {"type": "string"}, "status": {"enum": ["pass", "fail", "error"]},
                "score": {"type": "number", "minimum": 0}, "message": {"type": "string"},
                "test_code": {"type": "string"}, "filename": {"type": "string"},
                "line_no": {"const": 0}, "duration": {"type": "integer", "minimum": 0},
                "output": {"type": "string", "maxLength": 500},
            }}},
    },
}


def validate(doc, schema):
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)


def reporter_read(github_output, runner="posgrade"):
    """What the reporter does: the step output `result`, passed as env <RUNNER>_RESULTS, base64
    decoded and parsed; then notify-classroom.js's points: Σ tests[].score over Σ max_score."""
    lines = [ln for ln in github_output.splitlines() if ln.startswith("result=")]
    assert len(lines) == 1, github_output
    env = {f"{runner.upper()}_RESULTS": lines[0].removeprefix("result=")}
    results = json.loads(base64.b64decode(env[f"{runner.upper()}_RESULTS"]).decode("utf-8"))
    total = 0.0
    for t in results["tests"]:
        total += t["score"]  # the same IEEE double arithmetic as the reporter's JavaScript
    return results, total


def command_lines(text):
    """Lines as the Actions runner splits output (\\r, \\n) and as Python does, left-stripped."""
    import re

    return [ln.lstrip() for ln in re.split(r"\r\n|[\r\n]", text)] + [ln.lstrip() for ln in text.splitlines()]


def assert_no_workflow_commands(text):
    bad = [ln for ln in command_lines(text) if ln.startswith(("::", "##["))]
    assert not bad, bad


# -- hand-made results -----------------------------------------------------------------------

def case(ex, name, status="passed", points=1.0, kind="", message="", params="", device="", private=False):
    cid = f"{ex}::{name}" + (f"[{params}]" if params else "")
    return CaseResult(id=cid, exercise=ex, name=name, title=f"title of {name}", params=params, device=device,
                      points=points, score=points if status == "passed" else 0.0, status=status,
                      message=message, kind=kind, seconds=0.012, private=private)


def exercise(name, points, cases, revealed=False):
    graded = [c for c in cases if c.status != "skipped"]
    return ExerciseResult(name, f"Title {name}", points, earned=sum(c.score for c in graded),
                          graded=sum(c.points for c in graded), cases=cases, revealed_before_pass=revealed)


def run(*exercises, error=""):
    return RunResult(workspace="/ws", seed=42, devices=["cpu"], exercises=list(exercises),
                     started="2025-01-01T00:00:00+00:00",
                     seconds=3.2, versions={"posgrade": "0.1.0", "torch": "2", "python": "3"}, error=error)


HOSTILE_TEXT = ("values differ\n::add-mask::secret\r::error::x\n  ::stop-commands::tok\u2028##[set-output name=a]1"
                "\x00\x1b[31m ``` </details> <script>")


def mixed():
    return run(
        exercise("sinusoidal", 10, [
            case("sinusoidal", "test_table_values", params="16-8", points=2),
            case("sinusoidal", "test_row_zero", "failed", 2, "wrong", "row 0: values differ"),
            case("sinusoidal", "test_forward_values", "skipped", 3, params="cuda-2-5-8", device="cuda",
                 message="no CUDA device"),
            case("sinusoidal", "test_odd_d_model", "failed", 2, "exception",
                 "IndexError in sinusoidal_table(): boom\nyour code printed:\n  " + "p" * 700, params="7"),
        ], revealed=True),
        exercise("learned", 10, [
            case("learned", "test_position_ids", "failed", 1, "import", "your learned.py could not be imported: "
                 + HOSTILE_TEXT),
            case("learned", "test_parameters", "passed", 3),
        ]),
    )


def test_weighted_shares_add_up_to_the_exercise_points():
    cases = [case("attention", f"test_{i}", "passed" if i % 3 else "failed", points=1 + i % 4, kind="wrong")
             for i in range(97)]
    ex = exercise("attention", 20, cases)
    shares = formats.weighted(ex)
    assert round(sum(m for _, _, m in shares), 6) == 20
    assert abs(sum(s for _, s, _ in shares) - ex.score) < 0.01
    for c, s, m in shares:
        assert abs(m - 20 * c.points / ex.graded) < 1e-4 and s == (m if c.status == "passed" else 0)


def test_github_points_sum_exactly_as_the_reporter_adds_them():
    cases = [case("attention", f"test_{i}", "passed" if i % 5 else "failed", points=1 + i % 3, kind="wrong")
             for i in range(97)]
    r = run(exercise("attention", 20, cases), exercise("rope", 15, [case("rope", f"t{i}") for i in range(41)]))
    results, total = reporter_read(formats.github_output_line(r))
    validate(results, GITHUB_SCHEMA)
    expected = round(sum(round(s * 1e4) for e in r.exercises for _, s, _ in formats.weighted(e)) / 1e4, 4)
    assert total == expected and abs(total - r.score) < 0.01
    perfect = run(exercise("rope", 15, [case("rope", f"t{i}") for i in range(41)]))
    assert reporter_read(formats.github_output_line(perfect))[1] == 15  # full marks are exactly full marks


def test_escape_commands_leaves_no_line_a_workflow_command():
    escaped = formats.escape_commands(HOSTILE_TEXT)
    assert_no_workflow_commands(escaped)
    assert escaped.replace("\u200b", "") == HOSTILE_TEXT  # nothing else changes
    results, _ = reporter_read(formats.github_output_line(mixed()))
    for t in results["tests"]:
        for value in t.values():
            if isinstance(value, str):
                assert_no_workflow_commands(value)


def test_summary_says_public_unless_private_cases_ran():
    r = run(exercise("batches", 5, [case("batches", "test_a"), case("batches", "test_b")]))
    assert "all public cases passed" in formats.summary(r)
    r.exercises[0].cases.append(case("batches", "test_private_c", private=True))
    r.exercises[0].graded += 1
    r.exercises[0].earned += 1
    assert "all cases passed" in formats.summary(r) and "public" not in formats.summary(r)
    r.exercises[0].cases[0].status = "failed"
    assert "2 of 3 cases passed" in formats.summary(r)
    hidden = formats.summary(r, hidden={"batches::test_private_c"})
    assert "1 of 2 public cases passed" in hidden and "1 more case" in hidden and "Score" not in hidden
    assert formats.summary(run(error="boom\ndetail")) == "grading failed: boom"


def test_gradescope_output_matches_the_schema_with_visibility(tmp_path):
    r = mixed()
    r.exercises[1] = exercise("learned", 10, r.exercises[1].cases + [case("learned", "test_private_x", "passed", 2,
                                                                          private=True)])
    vis_file = tmp_path / "visibility.toml"
    vis_file.write_text('default = "visible"\nresults = "visible"\nstdout = "hidden"\n'
                        '[cases]\n"sinusoidal::test_odd_d_model" = "hidden"\n'
                        '"learned::test_param*" = "after_published"\n')
    vis = instructor.load_visibility(vis_file)
    gs = formats.to_gradescope(r, vis)
    validate(gs, GRADESCOPE_SCHEMA)
    by_id = {t["extra_data"]["id"]: t for t in gs["tests"] if "extra_data" in t}
    assert by_id["sinusoidal::test_odd_d_model[7]"]["visibility"] == "hidden"
    assert by_id["learned::test_parameters"]["visibility"] == "after_published"
    assert by_id["learned::test_private_x"]["visibility"] == instructor.DEFAULT_PRIVATE_VISIBILITY
    assert by_id["sinusoidal::test_row_zero"]["visibility"] == "visible"
    assert "sinusoidal::test_forward_values[cuda-2-5-8]" not in by_id  # skipped cases are not graded
    assert gs["visibility"] == "visible" and gs["stdout_visibility"] == "hidden" and abs(gs["score"] - r.score) < 0.01
    total = 0.0
    for t in gs["tests"]:  # the top-level score is rounded as the tests are: they add up to it exactly
        total += t.get("score", 0.0)
    assert total == gs["score"]
    assert "Score" not in gs["output"] and "public cases passed" in gs["output"]  # hidden cases: no total
    assert any(t.get("tags", [None])[-1] == "revealed-before-pass" and "score" not in t for t in gs["tests"])
    scored = [t for t in gs["tests"] if "score" in t]
    assert abs(sum(t["max_score"] for t in scored) - r.max_score) < 1e-9
    error = formats.to_gradescope(run(exercise("rope", 15, []), error="no workspace\ntraceback"))
    validate(error, GRADESCOPE_SCHEMA)
    assert error["score"] == 0 and {t["visibility"] for t in error["tests"]} == {"visible", "hidden"}


@pytest.mark.parametrize("text,words", [
    ('default = "secret"\n', "use one of"),
    ('colour = "visible"\n', "unknown key"),
    ('[cases]\n"rope" = "later"\n', "use one of"),
    ("default = \n", "cannot be read"),
])
def test_bad_visibility_files_are_named(tmp_path, text, words):
    f = tmp_path / "v.toml"
    f.write_text(text)
    with pytest.raises(instructor.InstructorError, match=words):
        instructor.load_visibility(f)


def test_visibility_patterns_take_brackets_literally(tmp_path):
    f = tmp_path / "v.json"
    f.write_text(json.dumps({"cases": {"sinusoidal::test_forward_values[cpu-*]": "hidden", "rope": "after_due_date"}}))
    vis = instructor.load_visibility(f)
    assert vis.of(case("sinusoidal", "test_forward_values", params="cpu-2-5-8")) == "hidden"
    assert vis.of(case("sinusoidal", "test_forward_values", params="cuda-2-5-8")) == "visible"
    assert vis.of(case("rope", "test_anything")) == "after_due_date"


def test_junit_parses_with_failures_errors_and_skips():
    xml = formats.to_junit(mixed())
    suites = {s.name: s for s in JUnitXml.fromstring(xml.encode())}
    assert list(suites) == ["sinusoidal", "learned"]
    sin = suites["sinusoidal"]
    assert (sin.tests, sin.failures, sin.errors, sin.skipped) == (4, 1, 1, 1)
    results = {c.name: c.result for c in sin}
    assert isinstance(results["test_row_zero"][0], Failure) and "row 0" in results["test_row_zero"][0].message
    assert isinstance(results["test_odd_d_model[7]"][0], Error)
    assert isinstance(results["test_forward_values[cuda-2-5-8]"][0], Skipped)
    assert results["test_table_values[16-8]"] == []
    props = {p.name: p.value for p in sin.properties()}
    assert props["revealed_before_pass"] == "true" and props["points"] == "10"
    learned = {c.name: c for c in suites["learned"]}
    err = learned["test_position_ids"].result[0]
    assert isinstance(err, Error) and "\\x00\\x1b[31m" in err.text and "\x00" not in err.text  # visible escapes
    assert "\ufffd" not in xml
    broken = JUnitXml.fromstring(formats.to_junit(run(exercise("rope", 15, []), error="boom")).encode())
    (suite,) = list(broken)
    assert suite.errors == 1 and "grading failed: boom" in list(suite)[0].result[0].message


def test_exercism_v3_order_status_and_output_cap():
    r = mixed()
    doc = formats.to_exercism(r)
    validate(doc, EXERCISM_SCHEMA)
    assert doc["status"] == "fail"
    graded = [c for e in r.exercises for c in e.cases if c.status != "skipped"]
    assert [t["name"] for t in doc["tests"]] == [formats.test_name(c) for c in graded]  # file (run) order
    odd = next(t for t in doc["tests"] if "test_odd_d_model" in t["test_code"])
    assert odd["status"] == "error" and len(odd["output"]) <= 500 and odd["output"].endswith(formats.TRUNCATED)
    assert "your code printed" not in odd["message"]
    assert "message" not in doc and "reveal" in doc["tests"][0]["message"]  # top-level message: errors only
    only_import = run(exercise("learned", 10, [case("learned", "test_a", "failed", kind="import",
                                                        message="your learned.py could not be imported: SyntaxError")]))
    doc = formats.to_exercism(only_import)
    validate(doc, EXERCISM_SCHEMA)
    assert doc["status"] == "error" and "SyntaxError" in doc["message"]
    validate(formats.to_exercism(run(error="boom")), EXERCISM_SCHEMA)
    ok = formats.to_exercism(run(exercise("batches", 5, [case("batches", "test_a")])))
    validate(ok, EXERCISM_SCHEMA)
    assert ok["status"] == "pass" and "message" not in ok


def test_posgrade_json_schema_and_old_schema_still_read():
    doc = json.loads(formats.to_json(mixed()))
    validate(doc, formats.RESULT_JSON_SCHEMA)
    assert RunResult.from_dict(doc) == mixed()
    old = json.loads(formats.to_json(mixed()))
    old["schema"] = 1
    for e in old["exercises"]:
        del e["revealed_before_pass"]
        for c in e["cases"]:
            del c["private"]
    del old["error"]
    assert RunResult.from_dict(old).exercises[0].cases[0].private is False


def test_github_summary_keeps_learner_text_in_fences():
    import re

    md = formats.github_summary(mixed())
    assert "> [!WARNING]" in md and "reveal" in md and "| sinusoidal |" in md
    fence, inside = None, 0
    for line in re.split(r"\r\n|\r|\n", md):  # CommonMark ends lines at \r too
        if fence is None and re.fullmatch(r"`{3,}text", line):
            fence = line.removesuffix("text")
        elif fence is not None and line == fence:
            fence = None
        elif fence is not None:
            inside += "<script>" in line or "::add-mask::" in line
        else:
            assert "<script>" not in line and "::add-mask::" not in line and "\x00" not in line, line
    assert fence is None and inside  # learner text appeared, and only inside fences that closed


# -- the real command ------------------------------------------------------------------------

def posgrade(*args, cwd=None, env=None, timeout=300):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("POSGRADE_", "GITHUB_"))}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "posgrade", *args], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=timeout)


PRINTING_LEARNED = '''

_reference_position_ids = position_ids


def position_ids(*args, **kwargs):
    print("::add-mask::secret\\r::error::fake\\n##[set-output name=x]1\\n" + "x" * 600)
    if len(args) > 2 or kwargs.get("past_length"):
        raise RuntimeError("\\n::warning::not with a cache")
    return _reference_position_ids(*args, **kwargs) + 1
'''


def outputs(tmp_path):
    return {"json": tmp_path / "r.json", "gradescope": tmp_path / "gs.json", "junit": tmp_path / "j.xml",
            "exercism": tmp_path / "ex.json", "github": tmp_path / "gh.txt"}


def format_args(outs):
    return [a for fmt, path in outs.items() for a in ("--format", fmt, "--output", str(path))]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """One real run writing all five formats: a wrong sinusoidal whose solution was revealed
    first, and a learned that prints workflow commands, answers off by one, and raises with a
    KV-cache offset."""
    tmp = tmp_path_factory.mktemp("formats")
    learned = (state.kit_dir("solutions") / "learned.py").read_text() + PRINTING_LEARNED
    ws = make_workspace(tmp / "ws", {"sinusoidal": WRONG / "sinusoidal" / "sin_cos_swapped.py", "learned": learned})
    assert CliRunner().invoke(main, ["reveal", "sinusoidal", "--yes", "-w", str(ws)]).exit_code == 0
    outs = outputs(tmp)
    p = posgrade("check", "sinusoidal", "learned", "-w", str(ws), "--seed", "5", "--min-score", "1",
                 *format_args(outs), env={"GITHUB_STEP_SUMMARY": str(tmp / "summary.md"), "GITHUB_ACTIONS": "true"})
    return p, outs, tmp


def test_one_run_writes_all_five_formats_that_agree(graded):
    p, outs, tmp = graded
    assert p.returncode == 0, p.stdout + p.stderr  # --min-score 1 is reached although cases failed
    result = RunResult.from_dict(json.loads(outs["json"].read_text()))
    validate(json.loads(outs["json"].read_text()), formats.RESULT_JSON_SCHEMA)
    assert result.status == "fail" and 1 <= result.score < result.max_score
    assert result.exercises[0].revealed_before_pass and not result.exercises[1].revealed_before_pass

    gs = json.loads(outs["gradescope"].read_text())
    validate(gs, GRADESCOPE_SCHEMA)
    assert abs(gs["score"] - result.score) < 0.01 and "public cases passed" in gs["output"]

    suites = {s.name: s for s in JUnitXml.fromfile(str(outs["junit"]))}
    failed_junit = {f"{name}::{c.name}" for name, s in suites.items() for c in s if c.result and not
                    isinstance(c.result[0], Skipped)}
    assert failed_junit == {c.id for e in result.exercises for c in e.failures}
    assert {p.name: p.value for p in suites["sinusoidal"].properties()}["revealed_before_pass"] == "true"

    ex = json.loads(outs["exercism"].read_text())
    validate(ex, EXERCISM_SCHEMA)
    graded_cases = [c for e in result.exercises for c in e.cases if c.status != "skipped"]
    assert [t["name"] for t in ex["tests"]] == [formats.test_name(c) for c in graded_cases]
    assert "message" not in ex and "reveal" in ex["tests"][0]["message"]
    printed = [t["output"] for t in ex["tests"] if t.get("output")]
    assert printed and all(len(o) <= 500 for o in printed)

    gh, total = reporter_read(outs["github"].read_text())
    validate(gh, GITHUB_SCHEMA)
    assert gh["status"] == "fail" and gh["max_score"] == result.max_score and abs(total - result.score) < 0.01
    assert len(gh["tests"]) == 2  # one test per exercise: the payload cannot grow with the failures
    assert "reveal" in gh["tests"][0]["message"] and "reveal" not in gh["tests"][1]["message"]
    for t in gh["tests"]:
        for v in t.values():
            if isinstance(v, str):
                assert_no_workflow_commands(v)
    summary = (tmp / "summary.md").read_text()
    assert "## posgrade" in summary and "[!WARNING]" in summary
    assert_no_workflow_commands(p.stdout)  # GITHUB_ACTIONS: the terminal report is escaped too
    assert "Pass mark 1 / 20: reached" in p.stdout and "reveal" in p.stdout


def test_learner_code_that_hangs_crashes_or_fails_to_import_still_gets_result_files(tmp_path):
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "loop_in_call.py",
                                          "learned": HOSTILE / "syntax_error.py", "batches": HOSTILE / "segfault.py"})
    outs = outputs(tmp_path)
    p = posgrade("check", "batches", "sinusoidal", "learned", "-w", str(ws), "--seed", "1", "--timeout", "0.5",
                 "--min-score", "50%", *format_args(outs))
    assert p.returncode == 1, p.stdout + p.stderr  # 0 points: the pass mark is not reached
    result = RunResult.from_dict(json.loads(outs["json"].read_text()))
    kinds = {e.name: {c.kind for c in e.failures} for e in result.exercises}
    assert "timeout" in kinds["sinusoidal"] and kinds["learned"] == {"import"}, kinds
    assert kinds["batches"] & {"crash", "exception"}, kinds
    validate(json.loads(outs["gradescope"].read_text()), GRADESCOPE_SCHEMA)
    validate(json.loads(outs["exercism"].read_text()), EXERCISM_SCHEMA)
    assert JUnitXml.fromfile(str(outs["junit"])).errors > 0
    assert reporter_read(outs["github"].read_text())[0]["status"] == "fail"


def test_a_grader_that_cannot_run_its_cases_writes_status_error(tmp_path):
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "test_private_broken.py").write_text('import no_such_module_for_posgrade\nEXERCISE = "batches"\n\n'
                                                  'def test_private_x(learner):\n    """x"""\n')
    outs = outputs(tmp_path)
    p = posgrade("check", "batches", "-w", "solutions", "--cases", str(cases), *format_args(outs))
    assert p.returncode == 1 and "internal error" in p.stderr
    assert json.loads(outs["json"].read_text())["status"] == "error"
    gs = json.loads(outs["gradescope"].read_text())
    validate(gs, GRADESCOPE_SCHEMA)
    assert gs["score"] == 0 and "no_such_module_for_posgrade" in gs["tests"][0]["output"]
    ex = json.loads(outs["exercism"].read_text())
    validate(ex, EXERCISM_SCHEMA)
    assert ex["status"] == "error"
    assert reporter_read(outs["github"].read_text())[0]["status"] == "error"
    assert JUnitXml.fromfile(str(outs["junit"])).errors == 1


@pytest.mark.parametrize("after", [0.0, 2.0], ids=["while-importing", "inside-the-call"])
def test_a_run_stopped_from_outside_leaves_an_error_result(tmp_path, after):
    """SIGTERM right after the placeholder (torch and pytest still importing: a KeyboardInterrupt
    raised there used to make CPython exit by SIGINT) or inside a hanging call: exit 1, error results."""
    ws = make_workspace(tmp_path / "ws", {"sinusoidal": HOSTILE / "loop_in_call.py"})
    gs_path, json_path = tmp_path / "gs.json", tmp_path / "r.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGRADE_")}
    proc = subprocess.Popen([sys.executable, "-m", "posgrade", "check", "sinusoidal", "-w", str(ws), "--timeout", "60",
                             "--format", "gradescope", "--output", str(gs_path), "--format", "json", "--output",
                             str(json_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not gs_path.exists() and time.monotonic() < deadline:  # the placeholder appears before grading
        time.sleep(0.1)
    placeholder = json.loads(gs_path.read_text())
    assert placeholder["score"] == 0 and "did not finish" in placeholder["tests"][0]["output"]
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    gs = json.loads(gs_path.read_text())
    validate(gs, GRADESCOPE_SCHEMA)
    assert gs["score"] == 0 and "SIGTERM" in gs["output"]
    assert json.loads(json_path.read_text())["status"] == "error"


# -- options ---------------------------------------------------------------------------------

def cli(*args, env=None):
    return CliRunner().invoke(main, list(args), env={"POSGRADE_WORKSPACE": None, "GITHUB_OUTPUT": None, **(env or {})})


def test_each_output_belongs_to_the_format_before_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("check", "--output", "x.json", "--format", "json")
    assert r.exit_code == 2 and "before any --format" in r.output
    r = cli("check", "--format", "json", "--output", "a.json", "--output", "b.json")
    assert r.exit_code == 2 and "already writes to a.json" in r.output
    r = cli("check", "--format", "json", "--format", "gradescope", "--output", "g.json")
    assert r.exit_code == 2  # no workspace here: a usage error, and still a result in each file
    assert json.loads((tmp_path / "g.json").read_text())["score"] == 0  # gradescope -> g.json
    assert json.loads((tmp_path / formats.DEFAULT_OUTPUTS["json"]).read_text())["status"] == "error"
    r = cli("check", "--format", "github")
    assert r.exit_code == 2 and "GITHUB_OUTPUT" in r.output
    r = cli("check", "--format", "json", "--output", "same.json", "--json", "same.json")
    assert r.exit_code == 2 and "both write" in r.output
    r = cli("check", "--min-score", "lots", "-w", "solutions")
    assert r.exit_code == 2 and "--min-score" in r.output


def test_usage_errors_still_write_a_result_that_says_why(tmp_path):
    gh = tmp_path / "gh.txt"
    r = cli("check", "--all", "-w", str(tmp_path / "missing"), "--format", "github", "--output", str(gh),
            env={"GITHUB_STEP_SUMMARY": str(tmp_path / "s.md")})
    assert r.exit_code == 2
    results, total = reporter_read(gh.read_text())
    assert results["status"] == "error" and total == 0
    assert results["max_score"] == sum(e.points for e in catalog.EXERCISES)
    assert "posgrade init" in results["tests"][0]["message"]
    assert "Grading did not finish" in (tmp_path / "s.md").read_text()


def test_junit_files_of_real_runs_validate_against_junit_10_xsd(graded):
    """The JUnit file of the real run above (wrong answers, learner prints with workflow commands,
    exceptions) is valid against Jenkins' xunit junit-10.xsd (tests/xsd/, see tests/test_junit_xsd.py)."""
    import xmlschema

    from conftest import ROOT

    _, outs, _ = graded
    schema = xmlschema.XMLSchema(str(ROOT / "tests" / "xsd" / "junit-10.xsd"))
    schema.validate(str(outs["junit"]))
    suites = list(JUnitXml.fromfile(str(outs["junit"])))
    assert sum(s.failures + s.errors for s in suites) > 0
