"""GitHub Classroom: `result=<base64 JSON>` for the autograding reporter, and the step summary."""

import base64
import json
import re

from posgrade.reporting.common import (_escape_all, _exact_sum, _units, cap, environment, failure_groups, reveal_notes,
                                       reveal_notes_for, split_output, summary, task_id, weighted)


MESSAGE_CAP = 1200  # characters of one exercise's message in the Classroom result (README: GitHub Classroom)
FAILURES_SHOWN = 3  # failed cases named in an exercise's message; the rest are counted


def _exercise_message(ex, cases):
    """One exercise's message for the Classroom reporter: its score, then its first failures, one
    line each (cases that failed for one reason told once), then where the rest is."""
    graded = [c for c, _, _ in cases]
    lines = [f"{ex.score:g} / {ex.points:g} points: {sum(c.status == 'passed' for c in graded)} of "
             f"{len(graded)} cases passed"]
    if ex.revealed_before_pass:
        lines.append(reveal_notes_for(ex))
    groups = {}  # one reason (a named mistake, or the explanation's first line) -> its cases
    for case in (c for c in graded if c.status == "failed"):
        first = (split_output(case.message)[0].strip().splitlines() or ["failed"])[0]
        groups.setdefault(case.mistake or first, []).append((case, first))
    for members in list(groups.values())[:FAILURES_SHOWN]:
        case, first = members[0]
        more = f" (+{len(members) - 1} more case{'s' * (len(members) > 2)})" if len(members) > 1 else ""
        lines.append(f"- {case.title}" + (f" [{case.params}]" if case.params else "") + f": {first}{more}")
    if len(groups) > FAILURES_SHOWN:
        lines.append(f"{len(groups) - FAILURES_SHOWN} more kinds of failure: see the job's summary page and the "
                     "posgrade-junit artifact.")
    return cap("\n".join(lines), MESSAGE_CAP)


def to_github(result):
    """The JSON that GitHub Classroom's autograding reporter reads (the python grader's version 3
    shape: status, max_score, tests[] with name, status, score, message, test_code, filename,
    line_no, duration in ms), every string escaped against workflow commands, since the reporter
    prints names and messages into the job log.

    One test per exercise, never one per case: the result travels to the reporter in ONE
    environment variable, which Linux caps at 131,072 bytes, so its size must not grow with the
    learner's output or the number of failures (each message is cut at MESSAGE_CAP; per-case
    detail goes to the step summary and the JUnit artifact). A test's score is its exercise's
    score; Classroom's points are the sum of tests[].score. Statuses as the reporter reads them:
    a learner's wrong, unfinished, crashing or hanging code is "fail"; "error" only when the
    grader could not finish (then the one test names the reason, with 0 of the real maximum)."""
    tests = []
    if result.error:
        tests.append({"name": "posgrade: grading failed", "status": "error", "score": 0.0,
                      "max_score": result.max_score, "message": cap(result.error, MESSAGE_CAP),
                      "test_code": f"posgrade check --seed {result.seed}", "filename": "", "line_no": 0,
                      "duration": round(result.seconds * 1000)})
    else:
        for ex in result.exercises:
            cases = weighted(ex)
            score = sum(_units(s) for _, s, _ in cases) / 10 ** 4  # shares in exact units, as weighted() made them
            tests.append({"name": f"{ex.name} · {ex.title}", "status": "pass" if ex.passed else "fail",
                          "score": score, "max_score": ex.points, "message": _exercise_message(ex, cases),
                          "test_code": f"posgrade check {ex.name} --seed {result.seed}", "filename": "",
                          "line_no": 0, "duration": round(sum(c.seconds for c in ex.cases) * 1000),
                          "task_id": task_id(ex.name)})
        target = sum(_units(t["score"]) for t in tests) / 10 ** 4
        _exact_sum(tests, target)
    notes = [n for n in result.notes if "sandbox" in n]  # what the reporter prints: the first test's message
    if notes and tests:
        tests[0]["message"] = cap("\n".join(notes + [tests[0]["message"]]), MESSAGE_CAP)
    out = {"version": 3, "status": result.status, "message": " · ".join([summary(result)] + result.notes),
           "max_score": result.max_score, "tests": tests}
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
        r=result, summary=summary(result), notes=[n for n in result.notes if "sandbox" in n] + reveal_notes(result),
        failures=failures,
        more=max(0, total - len(groups)))


