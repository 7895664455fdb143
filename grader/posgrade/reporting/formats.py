"""Result formats that classroom systems read, all rendered from one RunResult.

    json        posgrade's own result model (RunResult.to_dict, schema 3; RESULT_JSON_SCHEMA)
    gradescope  Gradescope's results.json (score, execution_time, output, tests[] with visibility)
    junit       JUnit XML: one <testsuite> per exercise, one <testcase> per case
    github      GitHub Classroom: `result=<base64 JSON>` appended to $GITHUB_OUTPUT, in the shape
                the autograding reporter reads, plus a Markdown summary for $GITHUB_STEP_SUMMARY
    exercism    Exercism's test-runner results.json, version 3
    html        a self-contained page for people, with heatmaps of mismatched outputs (posgrade.reporting.html)

Shared rules: a case is worth its share of its exercise's points (`weighted`); the summary
says "all public cases passed" unless the run included an instructor's private cases
(`summary`); an exercise whose solution was revealed before it passed is flagged in every
format; a run the grader could not finish (RunResult.error) is status "error" everywhere.
"""

import base64
import datetime
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from posgrade.kit import catalog

FORMATS = ("json", "gradescope", "junit", "github", "exercism", "html")
DEFAULT_OUTPUTS = {  # where a --format without its own --output writes
    "json": "posgrade-results.json",
    "gradescope": "gradescope-results.json",
    "junit": "posgrade-junit.xml",
    "github": None,  # $GITHUB_OUTPUT
    "exercism": "exercism-results.json",
    "html": "posgrade-report.html",
}
OUTPUT_CAP = 500  # Exercism (and GitHub's python grader) keep at most this much of a test's output
TRUNCATED = "Output was truncated. Please limit to 500 chars"
LEARNER_ERRORS = ("import", "timeout", "crash", "memory", "output", "internal")  # kinds that are not a wrong answer


# -- shared pieces ----------------------------------------------------------------------------

def graded_cases(result):
    return [c for e in result.exercises for c in e.cases if c.status != "skipped"]


def summary(result, hidden=frozenset()):
    """One line a learner can't misread: "all public cases passed" when the run had only the
    cases that ship with posgrade (an instructor may grade more), "all cases passed" when it
    included the instructor's private ones. Cases in `hidden` (ids) are neither counted nor
    scored here: they are what a learner cannot see yet."""
    if result.error:
        return f"grading failed: {result.error.splitlines()[0]}"
    graded = graded_cases(result)
    counted = [c for c in graded if c.id not in hidden]
    label = "cases" if any(c.private for c in graded) and not hidden else "public cases"
    ok = sum(c.status == "passed" for c in counted)
    parts = []
    if not hidden:
        parts.append(f"Score {result.score:g} / {result.max_score:g}")
    if not counted:
        parts.append(f"no {label} ran")
    elif ok == len(counted):
        parts.append(f"all {label} passed")
    else:
        parts.append(f"{ok} of {len(counted)} {label} passed")
    if hidden:
        parts.append(f"{len(graded) - len(counted)} more case{'s' * (len(graded) - len(counted) != 1)} "
                     "are graded but not shown yet")
    skipped = sum(c.status == "skipped" for e in result.exercises for c in e.cases)
    if skipped:
        parts.append(f"{skipped} case{'s' * (skipped != 1)} skipped (no CUDA device)")
    return " · ".join(parts)


def reveal_notes(result):
    return [f"{e.name}: the reference solution was shown (`posgrade reveal {e.name}`) before this exercise "
            "was passed" for e in result.exercises if e.revealed_before_pass]


def _units(value, places=4):
    return round(value * 10 ** places)


def weighted(ex):
    """[(case, score, max_score)] for the graded cases of ex, in run order: a case is worth
    points * case.points / graded points of its exercise, rounded to 4 decimals so that the
    shares of one exercise add up to its points exactly (largest remainders get the rest)."""
    graded = [c for c in ex.cases if c.status != "skipped"]
    if not graded or not ex.graded:
        return []
    scale = 10 ** 4
    exact = [ex.points * scale * c.points / ex.graded for c in graded]
    units = [int(x) for x in exact]
    rest = _units(ex.points) - sum(units)
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - units[i], reverse=True)[:max(rest, 0)]:
        units[i] += 1
    return [(c, u / scale if c.status == "passed" else 0.0, u / scale) for c, u in zip(graded, units)]


def split_output(message):
    """(explanation, what the learner's code printed) from a case message."""
    head, sep, printed = message.partition("\nyour code printed:\n")
    if not sep:
        return message, ""
    return head, "\n".join(line[2:] if line.startswith("  ") else line for line in printed.splitlines())


def cap(text, limit=OUTPUT_CAP):
    """text, cut so that with the truncation notice it stays within limit characters."""
    if len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED) - 1] + "\n" + TRUNCATED


def test_name(case):
    return f"{case.exercise} · {case.title}" + (f" [{case.params}]" if case.params else "")


def test_code(result, case):
    extra = " --device cuda" if case.device == "cuda" else ""
    return f"posgrade check {case.exercise} --seed {result.seed}{extra}  # case {case.id}"


def task_id(exercise):
    return catalog.names().index(exercise) + 1 if exercise in catalog.names() else 0


# -- workflow-command escaping (GitHub Actions) ---------------------------------------------

_LINE_BREAK = re.compile(r"(\r\n|[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029])")
_COMMAND_START = re.compile(r"^(\s*)(::|##\[)")


def escape_commands(text):
    """Text that the Actions runner cannot read as a workflow command (`::set-output ...`,
    `::add-mask::`, `::stop-commands::`, legacy `##[...]`): a line that would start with one, after
    any whitespace and after any kind of line break, gets a zero-width space in front of it."""
    parts = _LINE_BREAK.split(text)
    for i in range(0, len(parts), 2):
        parts[i] = _COMMAND_START.sub(lambda m: m.group(1) + "\u200b" + m.group(2), parts[i])
    return "".join(parts)


def _escape_all(obj):
    if isinstance(obj, str):
        return escape_commands(obj)
    if isinstance(obj, list):
        return [_escape_all(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _escape_all(v) for k, v in obj.items()}
    return obj


# -- json -------------------------------------------------------------------------------------

def to_json(result):
    d = result.to_dict()
    d["summary"] = summary(result)
    return json.dumps(d, indent=2) + "\n"


_GRID = {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}}}  # rows of cells

_CASE_SCHEMA = {
    "type": "object",
    "required": ["id", "exercise", "name", "title", "params", "device", "points", "score", "status", "message",
                 "kind", "seconds", "private", "mistake"],
    "properties": {
        "id": {"type": "string", "description": "exercise::function[params], unique in a run"},
        "exercise": {"type": "string"},
        "name": {"type": "string", "description": "the case function; names the mistake it catches"},
        "title": {"type": "string"},
        "params": {"type": "string"},
        "device": {"enum": ["cpu", "cuda", ""]},
        "points": {"type": "number", "minimum": 0},
        "score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed", "skipped"]},
        "message": {"type": "string"},
        "kind": {"enum": ["", "wrong", "not-implemented", "exception", "import", "timeout", "crash", "memory",
                          "output", "internal"]},
        "seconds": {"type": "number", "minimum": 0},
        "private": {"type": "boolean", "description": "an instructor's case from --cases"},
        "mistake": {"type": "string", "description": "the known mistake the output matched; empty if none"},
        "figure": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["what", "expected", "got"],
            "properties": {"what": {"type": "string"},
                           "expected": _GRID, "got": _GRID},
        }], "description": "2-D slices of the expected and the learner's output (with --html only)"},
    },
}

RESULT_JSON_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "posgrade result, schema 3 (posgrade check --format json)",
    "type": "object",
    "required": ["schema", "workspace", "seed", "devices", "exercises", "started", "seconds", "versions", "notes",
                 "error", "score", "max_score", "passed", "status"],
    "properties": {
        "schema": {"const": 3},
        "workspace": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0},
        "devices": {"type": "array", "items": {"enum": ["cpu", "cuda"]}},
        "started": {"type": "string", "description": "ISO 8601, UTC"},
        "seconds": {"type": "number", "minimum": 0},
        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "error": {"type": "string", "description": "why the grader could not finish; empty when it did"},
        "score": {"type": "number", "minimum": 0},
        "max_score": {"type": "number", "minimum": 0},
        "passed": {"type": "boolean"},
        "status": {"enum": ["pass", "fail", "error"]},
        "summary": {"type": "string"},
        "exercises": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "title", "points", "earned", "graded", "cases", "score", "passed",
                         "revealed_before_pass"],
            "properties": {
                "name": {"type": "string"},
                "title": {"type": "string"},
                "points": {"type": "number", "minimum": 0},
                "earned": {"type": "number", "minimum": 0},
                "graded": {"type": "number", "minimum": 0},
                "score": {"type": "number", "minimum": 0},
                "passed": {"type": "boolean"},
                "revealed_before_pass": {"type": "boolean"},
                "cases": {"type": "array", "items": _CASE_SCHEMA},
            },
        }},
    },
}


# -- gradescope -------------------------------------------------------------------------------

def to_gradescope(result, visibility=None):
    """Gradescope's results.json (their specs.md): a test per graded case with its weighted
    score and the visibility the instructor's file gives it; the top-level output is a summary
    that counts only what a learner can see."""
    from posgrade.classroom.instructor import Visibility

    vis = visibility or Visibility()
    out = {
        "score": 0.0 if result.error else result.score,
        "execution_time": max(0, round(result.seconds)),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": [],
        "extra_data": {"posgrade": result.versions.get("posgrade", ""), "seed": result.seed,
                       "devices": result.devices, "status": result.status,
                       "revealed_before_pass": [e.name for e in result.exercises if e.revealed_before_pass]},
    }
    if vis.results:
        out["visibility"] = vis.results
    if vis.stdout:
        out["stdout_visibility"] = vis.stdout
    if result.error:
        reason, _, detail = result.error.partition("\n")
        out["output"] = f"Grading failed, so this submission has 0 points for now: {reason}"
        out["tests"] = [
            {"name": "posgrade: grading failed", "score": 0.0, "max_score": result.max_score, "status": "failed",
             "output": reason, "visibility": "visible"},
            {"name": "posgrade: grading failed (details for the instructor)", "status": "failed",
             "output": result.error, "visibility": "hidden"},
        ]
        return out
    hidden = set()
    for number, ex in enumerate(result.exercises, 1):
        if ex.revealed_before_pass:
            out["tests"].append({
                "name": f"{ex.name}: reference solution revealed before passing", "status": "failed",
                "output": reveal_notes_for(ex), "visibility": "visible", "tags": [ex.name, "revealed-before-pass"],
                "number": f"{number}.0"})
        for i, (case, score, max_score) in enumerate(weighted(ex), 1):
            seen = vis.of(case)
            if seen != "visible":
                hidden.add(case.id)
            test = {"name": test_name(case), "number": f"{number}.{i}", "score": score, "max_score": max_score,
                    "status": "passed" if case.status == "passed" else "failed", "visibility": seen,
                    "tags": [case.exercise] + (["private"] if case.private else []),
                    "extra_data": {"id": case.id, "kind": case.kind, "private": case.private}}
            if case.message:
                test["output"] = case.message
            out["tests"].append(test)
    lines = [summary(result, hidden=frozenset(hidden))] + result.notes + reveal_notes(result)
    out["output"] = "\n".join(lines)
    return out


def reveal_notes_for(ex):
    return (f"The reference solution of {ex.name} was shown with `posgrade reveal {ex.name}` before the "
            "exercise was passed (recorded in the workspace's .posgrade/state.json).")


# -- junit ------------------------------------------------------------------------------------

_XML_BAD = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text):
    """Text that XML 1.0 can hold: characters it forbids (NUL, ESC, ...) become U+FFFD."""
    return _XML_BAD.sub("\ufffd", str(text))


def to_junit(result):
    """JUnit XML (the common Surefire/xunit dialect): <testsuites> of one <testsuite> per
    exercise, a <testcase> per case; wrong answers are <failure>, learner code that raised,
    crashed, hung or failed to import is <error>, CUDA cases without a GPU are <skipped>."""
    stamp = result.started or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    root = ET.Element("testsuites", name="posgrade")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def suite(name, cases_time):
        return ET.SubElement(root, "testsuite", name=name, timestamp=stamp, time=f"{cases_time:.3f}")

    if result.error:
        s = suite("posgrade", result.seconds)
        tc = ET.SubElement(s, "testcase", classname="posgrade", name="grading", time=f"{result.seconds:.3f}")
        reason = result.error.splitlines()[0]
        ET.SubElement(tc, "error", message=_xml(f"grading failed: {reason}"), type="internal").text = _xml(result.error)
        s.set("tests", "1"), s.set("failures", "0"), s.set("errors", "1"), s.set("skipped", "0")
        totals["tests"] += 1
        totals["errors"] += 1
    for ex in result.exercises:
        if result.error and not ex.cases:
            continue
        s = suite(ex.name, sum(c.seconds for c in ex.cases))
        props = ET.SubElement(s, "properties")
        for k, v in (("points", f"{ex.points:g}"), ("score", f"{ex.score:g}"), ("seed", str(result.seed)),
                     ("devices", ",".join(result.devices)),
                     ("revealed_before_pass", "true" if ex.revealed_before_pass else "false")):
            ET.SubElement(props, "property", name=k, value=v)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for case in ex.cases:
            name = case.id.split("::", 1)[1]
            tc = ET.SubElement(s, "testcase", classname=f"posgrade.{ex.name}", name=_xml(name),
                               time=f"{case.seconds:.3f}")
            counts["tests"] += 1
            if case.status == "skipped":
                ET.SubElement(tc, "skipped", message=_xml(case.message or "skipped"))
                counts["skipped"] += 1
            elif case.status == "failed":
                explanation, printed = split_output(case.message)
                tag = "failure" if case.kind in ("wrong", "not-implemented") else "error"
                first = explanation.splitlines()[0] if explanation else "failed"
                ET.SubElement(tc, tag, message=_xml(f"{case.title}: {first}"),
                              type=case.kind or "failed").text = _xml(explanation)
                if printed:
                    ET.SubElement(tc, "system-out").text = _xml(printed)
                counts["failures" if tag == "failure" else "errors"] += 1
        for k, v in counts.items():
            s.set(k, str(v))
            totals[k] += v
        out = [f"{ex.name}: {ex.score:g} / {ex.points:g}"]
        if ex.revealed_before_pass:
            out.append("NOTE: " + reveal_notes_for(ex))
        ET.SubElement(s, "system-out").text = _xml("\n".join(out))
    for k, v in totals.items():
        root.set(k, str(v))
    root.set("time", f"{result.seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- github -----------------------------------------------------------------------------------

def _exact_sum(tests, target):
    """Make the left-to-right float sum of tests[].score (what the reporter computes in
    JavaScript) land exactly on target, by nudging the last scoring test."""
    scoring = [i for i, t in enumerate(tests) if t["score"]]
    if not scoring:
        return
    last = scoring[-1]
    before = 0.0
    for t in tests[:last]:
        before += t["score"]
    candidate = target - before
    for _ in range(4):
        if before + candidate == target:
            break
        candidate = candidate + (target - (before + candidate))
    tests[last]["score"] = candidate


def to_github(result):
    """The JSON that GitHub Classroom's autograding reporter reads (the python grader's version 3
    shape: status, max_score, tests[] with name, status, score, message, test_code, filename,
    line_no, duration in ms, output), every string escaped against workflow commands, since the
    reporter prints names and messages into the job log. Each test has its own weighted score;
    Classroom's points are the sum of tests[].score."""
    tests = []
    if result.error:
        tests.append({"name": "posgrade: grading failed", "status": "error", "score": 0.0, "max_score": 0.0,
                      "message": result.error, "test_code": f"posgrade check --seed {result.seed}",
                      "filename": "", "line_no": 0, "duration": round(result.seconds * 1000)})
    else:
        for ex in result.exercises:
            if ex.revealed_before_pass:
                tests.append({"name": f"{ex.name}: reference solution revealed before passing", "status": "fail",
                              "score": 0.0, "max_score": 0.0, "message": reveal_notes_for(ex),
                              "test_code": f"posgrade reveal {ex.name}", "filename": "", "line_no": 0,
                              "duration": 0})
            for case, score, max_score in weighted(ex):
                explanation, printed = split_output(case.message)
                status = "pass" if case.status == "passed" else ("fail" if case.kind == "wrong" else "error")
                test = {"name": test_name(case), "status": status, "score": score, "max_score": max_score,
                        "message": explanation, "test_code": test_code(result, case), "filename": "",
                        "line_no": 0, "duration": round(case.seconds * 1000), "task_id": task_id(case.exercise)}
                if printed:
                    test["output"] = cap(escape_commands(printed))  # escaped first: the cap holds after it
                tests.append(test)
        target = sum(_units(t["score"]) for t in tests) / 10 ** 4
        _exact_sum(tests, target)
    out = {"version": 3, "status": result.status, "message": summary(result), "max_score": result.max_score,
           "tests": tests}
    return _escape_all(out)


def github_output_line(result):
    payload = json.dumps(to_github(result), separators=(",", ":"), ensure_ascii=True)
    return "result=" + base64.b64encode(payload.encode()).decode() + "\n"


def _md(text):
    """Text safe in a Markdown table cell or heading (our titles, instructors' case names)."""
    text = str(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "`*_[]<>|#!":
        text = text.replace(ch, "\\" + ch)
    return text


def _fence(text):
    """A fenced block that no backtick run in text can close (control characters shown as U+FFFD)."""
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "\ufffd", str(text).replace("\r\n", "\n").replace("\r", "\n"))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _template_env():
    from posgrade.reporting.terminal import environment

    env = environment()
    env.filters["md"] = _md
    env.filters["fence"] = _fence
    return env


def github_summary(result, limit=10):
    """The Markdown for $GITHUB_STEP_SUMMARY: scores per exercise, reveal notes, first failures;
    learner text only inside code fences."""
    from posgrade.reporting.terminal import failure_groups

    groups, total = failure_groups(result, limit)  # cases that failed for one reason are folded together
    failures = [(g["case"], g["others"], *split_output(g["case"].message)) for g in groups]
    return _template_env().get_template("github-summary.md.j2").render(
        r=result, summary=summary(result), notes=reveal_notes(result), failures=failures,
        more=max(0, total - len(groups)))


# -- exercism ---------------------------------------------------------------------------------

def to_exercism(result):
    """Exercism's results.json, version 3: status pass/fail/error, tests in the order of their
    case files, a test's own output (what the learner's code printed) capped at 500 characters."""
    notes = reveal_notes(result)
    if result.error:
        return {"version": 3, "status": "error", "message": result.error, "tests": []}
    tests = []
    for ex in result.exercises:
        for case in ex.cases:
            if case.status == "skipped":
                continue
            explanation, printed = split_output(case.message)
            status = "pass" if case.status == "passed" else ("fail" if case.kind == "wrong" else "error")
            test = {"name": test_name(case), "test_code": test_code(result, case), "status": status,
                    "task_id": task_id(case.exercise)}
            if status != "pass":
                test["message"] = explanation or "failed"
            if printed:
                test["output"] = cap(printed)
            tests.append(test)
    graded = graded_cases(result)
    if graded and all(c.kind == "import" for c in graded):  # nothing ran: the files could not be imported
        errors = list(dict.fromkeys(split_output(c.message)[0] for c in graded))
        return {"version": 3, "status": "error", "message": "\n\n".join(errors + notes), "tests": tests}
    status = "pass" if result.passed else "fail"
    return {"version": 3, "status": status, "message": "\n".join(notes) if notes else None, "tests": tests}


# -- writing ----------------------------------------------------------------------------------

def _atomic_write(path, text):
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or "."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def render(fmt, result, visibility=None):
    """The text of a file format (json, gradescope, junit, exercism, html)."""
    if fmt == "json":
        return to_json(result)
    if fmt == "gradescope":
        return json.dumps(to_gradescope(result, visibility), indent=2) + "\n"
    if fmt == "junit":
        return to_junit(result)
    if fmt == "exercism":
        return json.dumps(to_exercism(result), indent=2) + "\n"
    if fmt == "html":
        from posgrade.reporting import html as htmlreport

        return htmlreport.render(result)
    raise ValueError(f"{fmt} is not a file format")


def write(fmt, path, result, visibility=None, summary_path=None):
    """Write result as fmt to path. For github, path is the $GITHUB_OUTPUT file (appended to)
    and summary_path the $GITHUB_STEP_SUMMARY file (appended to, when given)."""
    if fmt == "github":
        with open(path, "a", encoding="utf-8") as f:
            f.write(github_output_line(result))
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as f:
                f.write(github_summary(result))
        return
    _atomic_write(path, render(fmt, result, visibility))
