"""Reporters: a RunResult rendered for people (terminal) or machines (JSON).

Text layouts live in templates/ (jinja2), so the wording can change without touching code.
"""

import json

from posgrade.reporting.common import environment, failure_groups


def terminal(result, verbose=False, unicode=True, command="posgrade check", wall=None):
    """The short report: a line per exercise, then the first failures explained. wall: the seconds
    the learner waited (worker start and imports included), printed beside the cases' own time."""
    shown, total = failure_groups(result, None if verbose else 3)
    return environment().get_template("terminal.txt.j2").render(
        r=result, shown=shown, hidden=total - len(shown), verbose=verbose, wall=wall,
        ok="✓" if unicode else "ok", bad="✗" if unicode else "X", command=command,
        width=max([len(e.name) for e in result.exercises] + [8]),
    )


def to_json(result):
    return json.dumps(result.to_dict(), indent=2) + "\n"


def check_text(result, command, pass_mark=None, verbose=False, unicode=True, wall=None):
    """(the whole text `posgrade check` prints, its exit code): the report, then whether grading
    finished, the pass mark (value, is_percent) when one was given, and reveal notes."""
    from posgrade.reporting.common import reveal_notes

    text = terminal(result, verbose=verbose, unicode=unicode, command=command, wall=wall)
    if result.error:
        text += f"\nGrading did not finish: {result.error}\n"
    code = 0 if result.passed else 1
    if pass_mark is not None:
        mark = pass_mark[0] * result.max_score / 100 if pass_mark[1] else pass_mark[0]
        reached = not result.error and result.score >= mark - 1e-9
        text += f"Pass mark {mark:g} / {result.max_score:g}: {'reached' if reached else 'not reached'}\n"
        code = 0 if reached else 1
    for note in reveal_notes(result):
        text += f"Note: {note}\n"
    return text, code
