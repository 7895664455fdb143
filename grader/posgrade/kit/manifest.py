"""The kit's files that decide verdicts, and their hashes: grading stops when any changed on disk.

The reference solutions (solutions/), the stubs (exercises/), the hidden cases (grading/cases/) and
the comparisons and mistake catalogs (diagnosis/) decide every verdict. A build (setup.py's
build_py) writes posgrade/kit_manifest.json with the SHA-256 of each of their files. The grader
checks the files at the start (`begin`) and the end (`finish`) of every run; a changed, missing or
added file stops the run with an error, never a grade.

The rule for a checkout or an editable install (no kit_manifest.json beside the package): the
baseline is the files as they were at the start of the run, so a change during a run (while learner
code runs) is caught, and a developer's edit between runs is not an error.

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


def begin():
    """At a run's start: (baseline, the first file that differs from the build's hashes or None)."""
    now = hashes(roots())
    built = recorded()
    if built is None:
        return now, None
    return built, _first_difference(built, now)


def finish(baseline):
    """At a run's end: the first file that differs from the baseline, or None."""
    return _first_difference(baseline, hashes(roots()))


def message(rel):
    return f"the kit's files changed on disk ({rel}): reinstall posgrade"
