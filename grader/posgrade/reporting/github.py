"""GitHub Classroom: `result=<base64 JSON>` for the autograding reporter, and the step summary."""

import base64
import json
import re

from posgrade.reporting.common import (_escape_all, _units, cap, environment, escape_commands, failure_groups,
                                       reveal_notes, reveal_notes_for, split_output, summary, task_id, test_code,
                                       test_name, weighted)

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
    env = environment()
    env.filters["md"] = _md
    env.filters["fence"] = _fence
    return env


def github_summary(result, limit=10):
    """The Markdown for $GITHUB_STEP_SUMMARY: scores per exercise, reveal notes, first failures;
    learner text only inside code fences."""
    groups, total = failure_groups(result, limit)  # cases that failed for one reason are folded together
    failures = [(g["case"], g["others"], *split_output(g["case"].message)) for g in groups]
    return _template_env().get_template("github-summary.md.j2").render(
        r=result, summary=summary(result), notes=reveal_notes(result), failures=failures,
        more=max(0, total - len(groups)))


