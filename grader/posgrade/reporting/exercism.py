"""Exercism's test-runner results.json, version 3 (exercism/docs building/tooling/test-runners/interface.md)."""

import os
import re

from posgrade.reporting.common import (cap, graded_cases, reveal_notes_for, split_output, task_id, test_code,
                                       test_name)

MESSAGE_CAP = 65535  # Exercism's limit on the top-level message
# the worker's private copy of the workspace: <tmp>/posgrade-<8 random chars>/workspace/ (grading/process.py)
# (an absolute path that starts after a space, quote, bracket, = or :; segments cannot hold "/", so the
# match is linear in the text however long the learner's output)
_SCRATCH = re.compile(r"""(?<![^\s'"(<\[=:,])(?:/[^\s'"()<>\[\]=:,/]*)*/posgrade-[a-z0-9_]+/workspace/""")
# a frame of a traceback or of faulthandler's dump of a crashed worker, after paths were made relative
_FRAME = re.compile(r"""^\s*File "(?P<path>[^"]*)", line \d+""")


def _relative(text, workspace):
    """text with the learner's workspace folder and the worker's copy of it taken out of every
    path: /home/me/ws/rope.py and /tmp/posgrade-1a2b3c4d/workspace/rope.py both read rope.py."""
    if workspace:
        for folder in {os.path.abspath(workspace), os.path.realpath(workspace)}:
            if folder != os.sep:
                text = text.replace(folder.rstrip(os.sep) + os.sep, "")
    return _SCRATCH.sub("", text)


def _message(text, workspace):
    """A message as Exercism asks for it: paths relative to the solution folder, and the frames of
    files that are not the learner's (Python's, torch's, the grader's) and the list of loaded
    extension modules of a crash dump left out."""
    lines = []
    for line in _relative(text, workspace).splitlines():
        frame = _FRAME.match(line)
        if frame and (os.path.isabs(frame["path"]) or frame["path"].startswith("<")):
            continue
        if line.startswith("Extension modules:"):
            continue
        lines.append(line)
    return "\n".join(lines)


def _top_message(text):
    """The top-level message, within Exercism's 65,535 characters."""
    if len(text) <= MESSAGE_CAP:
        return text
    note = "\n(message truncated)"
    return text[: MESSAGE_CAP - len(note)] + note


def _status(case):
    if case.status == "passed":
        return "pass"
    return "fail" if case.kind == "wrong" else "error"  # Exercism: "error" is code that raised or did not return


def to_exercism(result):
    """Exercism's results.json, version 3: status pass/fail/error, tests in the order of their
    case files. The top-level `message` is there only with status "error" (the grader could not
    finish, or no file could be imported); a test's `message` explains a fail or error, its
    `output` is what the learner's code printed (capped at 500 characters). A note that a
    solution was revealed before the exercise was passed ends the message of that exercise's
    first test. Paths read relative to the solution folder."""
    ws = result.workspace
    if result.error:
        return {"version": 3, "status": "error", "message": _top_message(_message(result.error, ws) or
                                                                               "grading failed"), "tests": []}
    tests = []
    for ex in result.exercises:
        first = True
        for case in ex.cases:
            if case.status == "skipped":
                continue
            explanation, printed = split_output(case.message)
            status = _status(case)
            test = {"name": test_name(case), "test_code": test_code(result, case), "status": status,
                    "task_id": task_id(case.exercise)}
            notes = [_message(explanation, ws) or "failed"] if status != "pass" else []
            if first and ex.revealed_before_pass:
                notes.append(reveal_notes_for(ex))
            if notes:
                test["message"] = "\n\n".join(notes)
            if printed:
                test["output"] = cap(_relative(printed, ws))
            tests.append(test)
            first = False
    graded = graded_cases(result)
    if graded and all(c.kind == "import" for c in graded):  # nothing ran: the files could not be imported
        errors = dict.fromkeys(_message(split_output(c.message)[0], ws) for c in graded)
        return {"version": 3, "status": "error", "message": _top_message("\n\n".join(errors)), "tests": tests}
    return {"version": 3, "status": "pass" if result.passed else "fail", "tests": tests}
