"""What an instructor adds to a run: private case files (`--cases DIR`) and, for Gradescope,
a visibility file (`--visibility FILE`). Both are read and checked here, before grading, so a
mistake in them is a usage error that names the file, never a half-graded class.

Private case files are plain pytest files written like the built-in ones (see casekit):
they ask for the fixtures learner, ref, device, gen and seed, mark their worth with
@points(n), and say which exercise they grade with a module-level `EXERCISE = "name"` (or by
their file name, test_<exercise>.py). Their case functions must not reuse the name of a
built-in case of that exercise, since a case's id is `exercise::function[params]`.
"""

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from posgrade.kit import catalog

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
DEFAULT_PRIVATE_VISIBILITY = "after_due_date"


class InstructorError(Exception):
    """A problem in an instructor's file; the CLI reports it as a usage error (exit code 2)."""


# -- private case files ---------------------------------------------------------------------

@dataclass
class CaseFile:
    path: Path
    exercise: str
    names: list = field(default_factory=list)  # the case functions it defines


def _case_names(tree):
    """Names of the test functions a pytest file defines (module level and in Test* classes)."""
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names += [n.name for n in node.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")]
    return names


def _declared_exercise(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EXERCISE" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
            return ""  # set, but not to a plain string
    return None


def _parse(path):
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as err:
        raise InstructorError(f"case file {path} has a syntax error: {err.msg} (line {err.lineno})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InstructorError(f"case file {path} cannot be read: {err}") from None


def builtin_case_names(exercise):
    here = Path(__file__).parent / "cases" / catalog.get(exercise).cases
    return set(_case_names(ast.parse(here.read_text(encoding="utf-8"))))


def load_case_files(location):
    """The private case files at location (a folder of test_*.py files, or one file), checked."""
    path = Path(location).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.glob("test_*.py") if p.is_file())
        if not files:
            raise InstructorError(f"--cases {location}: no test_*.py files in that folder")
    elif path.is_file() and path.suffix == ".py":
        files = [path]
    else:
        raise InstructorError(f"--cases {location}: no such folder or .py file")
    found, seen = [], {}
    for f in files:
        tree = _parse(f)
        declared = _declared_exercise(tree)
        exercise = declared if declared is not None else f.stem.removeprefix("test_")
        if exercise not in catalog.names():
            how = (f"its EXERCISE = {exercise!r} is not an exercise" if declared is not None else
                   "it does not say which exercise it grades")
            raise InstructorError(f"case file {f}: {how}; add a line EXERCISE = \"<name>\" with one of "
                                  f"{', '.join(catalog.names())}")
        names = _case_names(tree)
        if not names:
            raise InstructorError(f"case file {f} defines no test function (def test_...)")
        clash = sorted(set(names) & builtin_case_names(exercise))
        if clash:
            raise InstructorError(f"case file {f}: {', '.join(clash)} is also a built-in case of {exercise}; "
                                  f"rename it (for example test_private_{clash[0].removeprefix('test_')})")
        for n in names:
            if (exercise, n) in seen:
                raise InstructorError(f"case {exercise}::{n} is defined in both {seen[exercise, n]} and {f}")
            seen[exercise, n] = f
        found.append(CaseFile(f.resolve(), exercise, names))
    return found


def mark_private(result, case_files):
    """Flag the cases of a RunResult that came from the instructor's files."""
    private = {(cf.exercise, n) for cf in case_files for n in cf.names}
    for ex in result.exercises:
        for case in ex.cases:
            if (ex.name, case.name) in private:
                case.private = True
    return result


# -- the visibility file (Gradescope) ----------------------------------------------------------

def _pattern(text):
    """A rule pattern: `*` any text, `?` one character, everything else literal (brackets too)."""
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text) + r"\Z")


@dataclass
class Visibility:
    """Which Gradescope visibility each case gets; see README, "Case visibility on Gradescope"."""

    default: str = "visible"
    private: str = DEFAULT_PRIVATE_VISIBILITY
    results: str = ""  # Gradescope's top-level `visibility`; "" leaves it to Gradescope
    stdout: str = ""  # Gradescope's `stdout_visibility`
    rules: list = field(default_factory=list)  # (pattern text, compiled, visibility), in file order
    source: str = ""

    def of(self, case):
        seen = self.private if case.private else self.default
        keys = (case.id, case.id.split("[", 1)[0], case.exercise)
        for _, rx, vis in self.rules:
            if any(rx.match(k) for k in keys):
                seen = vis  # the last matching rule wins
        return seen

    def unused_rules(self, result):
        cases = [c for e in result.exercises for c in e.cases]
        return [text for text, rx, _ in self.rules
                if not any(rx.match(k) for c in cases for k in (c.id, c.id.split("[", 1)[0], c.exercise))]


def _check_value(value, where, source):
    if value not in VISIBILITIES:
        raise InstructorError(f"{source}: {where} is {value!r}; use one of {', '.join(VISIBILITIES)}")
    return value


def load_visibility(location):
    path = Path(location).expanduser()
    if not path.is_file():
        raise InstructorError(f"--visibility {location}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise InstructorError(f"{path}: reading TOML needs Python 3.11 or newer; write the file as JSON") from None
    except (ValueError, OSError) as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors
        raise InstructorError(f"{path} cannot be read: {err}") from None
    if not isinstance(data, dict):
        raise InstructorError(f"{path}: expected a table (TOML) or an object (JSON) at the top")
    known = {"default", "private", "results", "stdout", "cases"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InstructorError(f"{path}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                              f"the keys are {', '.join(sorted(known))}")
    vis = Visibility(source=str(path))
    for key in ("default", "private", "results", "stdout"):
        if key in data:
            setattr(vis, key, _check_value(data[key], key, path))
    cases = data.get("cases", {})
    if not isinstance(cases, dict):
        raise InstructorError(f"{path}: `cases` must map case patterns to visibilities")
    for pattern, value in cases.items():
        vis.rules.append((pattern, _pattern(pattern), _check_value(value, f"cases.{pattern!r}", path)))
    return vis
