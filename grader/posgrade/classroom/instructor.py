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
from posgrade.reporting.gradescope import DEFAULT_PRIVATE_VISIBILITY, VISIBILITIES, Visibility, _pattern  # noqa: F401



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
    import importlib.util

    cases_dir = Path(importlib.util.find_spec("posgrade.grading.cases").origin).parent  # found, not imported
    here = cases_dir / catalog.get(exercise).cases
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


# -- the visibility file (Gradescope) ----------------------------------------------------------

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
