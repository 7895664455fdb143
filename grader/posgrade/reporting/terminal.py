"""Reporters: a RunResult rendered for people (terminal) or machines (JSON).

Text layouts live in templates/ (jinja2), so the wording can change without touching code.
"""

import functools
import json
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@functools.lru_cache(maxsize=None)
def environment(autoescape=False, strict=False):
    """The jinja2 environment every reporter renders templates/ with: HTML pages autoescaped,
    and strict (an undefined name is an error) where a template must not render a blank."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True, autoescape=autoescape,
                              undefined=jinja2.StrictUndefined if strict else jinja2.Undefined)


def failure_groups(result, limit):
    """The first failures, with cases that failed for the same reason folded into one entry."""
    groups = []
    for ex in result.exercises:
        seen = {}
        for case in ex.failures:
            # the same named mistake, or the same non-value failure, is told once
            key = (f"mistake:{case.mistake}" if case.mistake else
                   case.message.splitlines()[0] if case.kind != "wrong" else case.id)
            if key in seen:
                seen[key]["others"] += 1
                continue
            seen[key] = {"exercise": ex.name, "case": case, "others": 0}
            groups.append(seen[key])
    return groups if limit is None else groups[:limit], len(groups)


def terminal(result, verbose=False, unicode=True, command="posgrade check"):
    """The short report: a line per exercise, then the first failures explained."""
    shown, total = failure_groups(result, None if verbose else 3)
    return environment().get_template("terminal.txt.j2").render(
        r=result, shown=shown, hidden=total - len(shown), verbose=verbose,
        ok="✓" if unicode else "ok", bad="✗" if unicode else "X", command=command,
        width=max([len(e.name) for e in result.exercises] + [8]),
    )


def to_json(result):
    return json.dumps(result.to_dict(), indent=2) + "\n"
