"""What every result format shares: weighted case scores, the summary line, output caps,
workflow-command escaping, atomic writes, and the one jinja2 environment for templates/."""

import functools
import os
import re
import tempfile
from pathlib import Path

import jinja2

from posgrade.kit import catalog

TEMPLATES = Path(__file__).parent / "templates"
OUTPUT_CAP = 500  # Exercism (and GitHub's python grader) keep at most this much of a test's output
TRUNCATED = "Output was truncated. Please limit to 500 chars"
LEARNER_ERRORS = ("import", "timeout", "crash", "memory", "output", "internal")  # kinds that are not a wrong answer



# -- cases and scores ----------------------------------------------------------------------------

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
        parts.append(f"Score {round(result.score, 1):g} / {result.max_score:g}")  # rounded as the terminal does
    if not counted:
        parts.append(f"no {label} ran")
    elif ok == len(counted):
        parts.append(f"all {label} passed")
    else:
        parts.append(f"{ok} of {len(counted)} {label} passed")
    if hidden:
        parts.append(f"{len(graded) - len(counted)} more case{'s' * (len(graded) - len(counted) != 1)} "
                     "are graded but not shown yet")
    skipped = [c for e in result.exercises for c in e.cases if c.status == "skipped"]
    if skipped:
        reasons = "; ".join(dict.fromkeys(c.message or "skipped" for c in skipped))
        parts.append(f"{len(skipped)} case{'s' * (len(skipped) != 1)} skipped ({reasons})")
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


def _exact_sum(tests, target):
    """Make the left-to-right float sum of tests[].score (what GitHub's reporter computes in
    JavaScript, and Gradescope adds up) land exactly on target, by nudging the last scoring test."""
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


def reveal_notes_for(ex):
    return (f"The reference solution of {ex.name} was shown with `posgrade reveal {ex.name}` before the "
            "exercise was passed (recorded in the workspace's .posgrade/state.json).")


# -- templates --------------------------------------------------------------------------------

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


# -- writing ----------------------------------------------------------------------------------

def atomic_write(path, text):
    """Write text to path in one step (a reader sees the old file or the new one, never half of
    one): a temporary file beside it, renamed over it. The file gets the mode any new file of this
    process gets (0666 less the umask: 0644 under umask 022), not mkstemp's owner-only 0600, so
    that a grader's other user (a CI's uploader, a teacher's web server) can read it."""
    path = Path(path)
    umask = None
    try:  # read where Linux shows it: setting it to read it back would touch other threads' files
        with open("/proc/self/status", encoding="ascii") as f:
            umask = next((int(ln.split()[1], 8) for ln in f if ln.startswith("Umask:")), None)
    except (OSError, ValueError):
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent or "."))
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
