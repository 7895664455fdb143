"""The kit's files that decide verdicts, and their hashes: grading stops when any changed on disk.

The reference solutions (solutions/), the stubs (exercises/), the hidden cases (grading/cases/) and
the comparisons and mistake catalogs (diagnosis/) decide every verdict. A build (setup.py's
build_py) writes posgrade/kit_manifest.json with the SHA-256 of each of their files. The grader
checks the files at the start (`begin`) and the end (`finish`) of every run; a changed, missing or
added file stops the run with an error, never a grade.

The rule for a checkout or an editable install (no kit_manifest.json beside the package): the
baseline is the files as they were at the start of the run (the run's exercises' own files and the
shared ones), so a change during a run (while learner code runs) is caught, and a developer's edit
between runs, or to another exercise's files, is not an error.

May import: nothing of posgrade above kit.
"""

import hashlib
import importlib.util
import json
import os
from pathlib import Path

NAME = "kit_manifest.json"
PACKAGE_PARTS = ("solutions", "exercises", "grading/cases", "diagnosis")  # under the package folder
SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = (".pyc", ".pyo")


def _package_dir():
    return Path(importlib.util.find_spec("posgrade").origin).resolve().parent


def roots(package_dir=None, checkout=True):
    """(prefix, folder) pairs whose files make up the kit."""
    package_dir = Path(package_dir or _package_dir())
    out = [(f"{part}/", package_dir / part) for part in PACKAGE_PARTS]
    if checkout:
        for sub in ("solutions", "exercises"):
            spec = importlib.util.find_spec(f"posgrade.{sub}")
            for folder in (spec.submodule_search_locations or []) if spec else []:
                folder = Path(folder).resolve()
                if package_dir not in folder.parents:  # a checkout: solutions/ beside grader/
                    out.append((f"{sub}/", folder))
    return [(prefix, folder) for prefix, folder in out if folder.is_dir()]


def hashes(pairs):
    """{relative path: sha256} of every file under the (prefix, folder) pairs."""
    found = {}
    for prefix, folder in pairs:
        for dirpath, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in files:
                if name.endswith(SKIP_SUFFIXES):
                    continue
                path = Path(dirpath) / name
                rel = prefix + path.relative_to(folder).as_posix()
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def write(package_dir):
    """Write package_dir/kit_manifest.json for a built package (solutions/ and exercises/ inside it)."""
    package_dir = Path(package_dir)
    data = {"files": hashes(roots(package_dir, checkout=False))}
    (package_dir / NAME).write_text(json.dumps(data, indent=0, sort_keys=True))
    return data


def recorded():
    """The hashes written at build time, or None in a checkout / editable install."""
    path = _package_dir() / NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())["files"]


def _first_difference(baseline, now):
    for rel in sorted(set(baseline) | set(now)):
        if baseline.get(rel) != now.get(rel):
            return rel
    return None


def _concerns(rel, exercises):
    """Whether file rel can decide a verdict of a run of `exercises`: every file but another
    exercise's own (solutions/rope.py, grading/cases/test_rope.py, diagnosis/mistakes/rope.py)."""
    from posgrade.kit import catalog

    stem = Path(rel).stem.removeprefix("test_")
    return stem in exercises or stem not in catalog.names()


def begin(exercises=None):
    """At a run's start: (baseline, the first file that differs from the build's hashes or None).
    In a checkout, the baseline is the files now, those of the run's exercises and the shared ones
    (other exercises' files may be edited by their authors meanwhile)."""
    now = hashes(roots())
    built = recorded()
    if built is None:
        if exercises is not None:
            now = {rel: h for rel, h in now.items() if _concerns(rel, set(exercises))}
        return now, None
    return built, _first_difference(built, now)


def finish(baseline, exercises=None):
    """At a run's end: the first file that differs from the baseline (changed, missing or added), or None."""
    now = hashes(roots())
    if recorded() is None and exercises is not None:
        now = {rel: h for rel, h in now.items() if rel in baseline or _concerns(rel, set(exercises))}
    return _first_difference(baseline, now)


def message(rel):
    return f"the kit's files changed on disk ({rel}): reinstall posgrade"
