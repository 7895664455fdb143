"""The result formats, by name: which module renders each, where each writes by default, and the
writing of a run's result files (a provisional error result first, the real one at the end).

    json        posgrade's own result model (RunResult.to_dict, schema 3): json_result.py
    gradescope  Gradescope's results.json (score, execution_time, output, tests[] with visibility): gradescope.py
    junit       JUnit XML: one <testsuite> per exercise, one <testcase> per case: junit.py
    github      GitHub Classroom: `result=<base64 JSON>` appended to $GITHUB_OUTPUT, in the shape
                the autograding reporter reads, plus a Markdown summary for $GITHUB_STEP_SUMMARY: github.py
    exercism    Exercism's test-runner results.json, version 3: exercism.py
    html        a self-contained page for people, with heatmaps of mismatched outputs: html.py

Shared rules (common.py): a case is worth its share of its exercise's points (`weighted`); the
summary says "all public cases passed" unless the run included an instructor's private cases;
an exercise whose solution was revealed before it passed is flagged in every format; a run the
grader could not finish (RunResult.error) is status "error" everywhere. A new format is a module
here with a to_<format>(result) function, and a row in RENDER and DEFAULT_OUTPUTS.
"""

import json
from pathlib import Path

from posgrade.reporting import exercism, github, gradescope, json_result, junit
from posgrade.reporting.common import (LEARNER_ERRORS, OUTPUT_CAP, TRUNCATED, atomic_write, cap,  # noqa: F401
                                       escape_commands, graded_cases, reveal_notes, reveal_notes_for,
                                       split_output, summary, task_id, test_code, test_name, weighted)
from posgrade.reporting.exercism import to_exercism  # noqa: F401  (the formats' public names, in one place)
from posgrade.reporting.github import github_output_line, github_summary, to_github  # noqa: F401
from posgrade.reporting.gradescope import Visibility, to_gradescope  # noqa: F401
from posgrade.reporting.json_result import RESULT_JSON_SCHEMA, to_json  # noqa: F401
from posgrade.reporting.junit import to_junit  # noqa: F401

FORMATS = ("json", "gradescope", "junit", "github", "exercism", "html")
DEFAULT_OUTPUTS = {  # where a --format without its own --output writes
    "json": "posgrade-results.json",
    "gradescope": "gradescope-results.json",
    "junit": "posgrade-junit.xml",
    "github": None,  # $GITHUB_OUTPUT
    "exercism": "exercism-results.json",
    "html": "posgrade-report.html",
}


def _html(result, visibility=None):
    from posgrade.reporting import html  # numpy and PNG drawing: only when a page is asked for

    return html.render(result)


RENDER = {  # format -> (result, visibility) -> the file's text
    "json": lambda result, visibility=None: json_result.to_json(result),
    "gradescope": lambda result, visibility=None: json.dumps(gradescope.to_gradescope(result, visibility),
                                                             indent=2) + "\n",
    "junit": lambda result, visibility=None: junit.to_junit(result),
    "exercism": lambda result, visibility=None: json.dumps(exercism.to_exercism(result), indent=2) + "\n",
    "html": _html,
}


def render(fmt, result, visibility=None):
    """The text of a file format (json, gradescope, junit, exercism, html)."""
    if fmt not in RENDER:
        raise ValueError(f"{fmt} is not a file format")
    return RENDER[fmt](result, visibility)


def write(fmt, path, result, visibility=None, summary_path=None, replace=""):
    """Write result as fmt to path. For github, path is the $GITHUB_OUTPUT file (appended to;
    `replace`, a line written there before, is taken out first) and summary_path the
    $GITHUB_STEP_SUMMARY file (appended to, when given)."""
    if fmt == "github":
        line = github.github_output_line(result)
        text = Path(path).read_text(encoding="utf-8") if replace and Path(path).exists() else ""
        if replace and replace in text:  # the provisional result: the step's output holds one result
            i = text.rindex(replace)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text[:i] + text[i + len(replace):] + line)
        else:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
        if summary_path:
            with open(summary_path, "a", encoding="utf-8") as f:
                f.write(github.github_summary(result))
        return line
    atomic_write(path, render(fmt, result, visibility))
    return ""


def write_all(targets, result, visibility=None, summary_path=None, warn=print, replace=None):
    """Write result to every (format, path) in targets; a file that cannot be written is told
    through warn(line) and does not stop the others. replace: {path: a provisional github line
    to take out}. Returns {path: the github line written} for each github target."""
    written = {}
    for fmt, path in targets:
        try:
            line = write(fmt, Path(path).expanduser(), result, visibility,
                         summary_path=summary_path if fmt == "github" else None,
                         replace=(replace or {}).get(path, ""))
            if line:
                written[path] = line
        except OSError as err:
            warn(f"posgrade: could not write the {fmt} results to {path}: {err}")
    return written
