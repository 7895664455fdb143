"""What teachers install is the built package, not this checkout: build the sdist, build the wheel
from it (as `python -m build` does), and compare the wheel's files with the source tree."""

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

IGNORED = {".git", ".venv", "build", "dist", "__pycache__", ".posgrade", "my-work"}


def source_copy(dest):
    """The source tree as a clean clone would have it (no build/, dist/, caches or venvs), so a
    stale build folder of this checkout cannot fill in for a file the packaging misses."""
    def ignore(folder, names):
        return [n for n in names if n in IGNORED or n.endswith(".egg-info")]

    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    src = source_copy(tmp / "src")
    out = tmp / "dist"
    # --no-isolation: the build backend (setuptools) of this environment; .ci/run builds in isolation
    p = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    wheel = next(out.glob("posgrade-*.whl"))
    sdist = next(out.glob("posgrade-*.tar.gz"))
    return wheel, sdist


def expected_files():
    want = set()
    for f in (ROOT / "grader").rglob("*"):
        if f.is_file() and "__pycache__" not in f.parts and not f.suffix == ".pyc":
            want.add(f.relative_to(ROOT / "grader").as_posix())
    for folder in ("exercises", "solutions"):
        for f in (ROOT / folder).glob("*.py"):
            want.add(f"posgrade/{folder}/{f.name}")
    return {w for w in want if not any(part.endswith(".egg-info") for part in w.split("/"))}


def test_every_module_template_and_case_file_is_in_the_wheel(built):
    wheel, _ = built
    inside = set(zipfile.ZipFile(wheel).namelist())
    want = expected_files()
    assert any(w.endswith(".j2") for w in want) and "posgrade/grading/cases/pytest.ini" in want
    missing = sorted(want - inside)
    assert not missing, f"in the source tree but not in {wheel.name}: {missing}"
    extra = sorted(n for n in inside - want if not n.startswith("posgrade-") and not n.endswith("kit_manifest.json"))
    assert not extra, f"in the wheel but not in the source tree: {extra}"


def test_nothing_from_the_tests_is_shipped(built):
    wheel, sdist = built
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or "conftest" in n]
    assert not [n for n in names if "/wrong/" in n or "/hostile/" in n]


def test_the_sdist_holds_the_sources_the_wheel_is_built_from(built):
    _, sdist = built
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for f in ("pyproject.toml", "setup.py", "README.md", "constraints.txt"):
        assert f in names, f
    for w in expected_files():
        src = ("grader/" + w) if not w.startswith(("posgrade/exercises/", "posgrade/solutions/")) \
            else w.removeprefix("posgrade/")
        assert src in names, f"{src} is not in {sdist.name}"
