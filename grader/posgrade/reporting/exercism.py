"""Exercism's test-runner results.json, version 3."""

from posgrade.reporting.common import cap, graded_cases, reveal_notes, split_output, task_id, test_code, test_name

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


