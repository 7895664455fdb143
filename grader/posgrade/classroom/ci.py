"""`posgrade ci github|gradescope`: the files a class needs to grade with posgrade in CI.

    github      .github/workflows/classroom.yml (GitHub Actions workflow for a Classroom
                assignment's template repository), .github/posgrade-constraints.txt and the
                bundled posgrade wheel, .github/posgrade/<wheel>
    gradescope  setup.sh, run_autograder, constraints.txt, README.txt (how to zip and upload),
                the bundled posgrade wheel, and, when given, the private cases (cases/) and
                the visibility file (as JSON)

Both install posgrade with the CPU build of torch: torch first from PyTorch's CPU index,
pinned in the constraints file, then posgrade with `-c` that file so pip keeps that torch.
The texts are jinja2 templates in reporting/templates/.

Where posgrade comes from: posgrade is not on PyPI, so a requirement like `posgrade==0.1.0`
would fail on the class's CI. By default the files carry a wheel: built from the kit's own
source when posgrade runs from a checkout, or the wheel (or sdist) given with --install PATH.
--install SPEC with a pip requirement (a git URL, an index you publish to) is used as given.
Where there is neither a checkout nor a file, the command refuses and says which option to pass.
"""

import json
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from posgrade.kit import catalog

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
EXECUTABLE = {"setup.sh", "run_autograder"}


def installed_torch():
    """The installed torch's version without its local tag (2.13.0+cpu -> 2.13.0), read from
    package metadata so that writing CI files does not import torch."""
    from importlib import metadata

    try:
        return metadata.version("torch").split("+", 1)[0]
    except metadata.PackageNotFoundError:
        return "2.4.0"


def kit_checkout():
    """The source checkout posgrade runs from (its pyproject.toml, setup.py and grader/posgrade), or None
    when posgrade was installed from a package."""
    import posgrade

    root = Path(posgrade.__file__).resolve().parents[2]
    if all((root / f).is_file() for f in ("pyproject.toml", "setup.py", "grader/posgrade/__init__.py")):
        return root
    return None


_NOT_SOURCE = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".posgrade", "node_modules"}


def build_wheel(root, dest):
    """Build posgrade's wheel from the checkout at root into dest; the wheel's path. The source is
    copied first, so that a stale build/ folder of the checkout cannot slip old files in."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="posgrade-src-") as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(root, src, ignore=lambda folder, names: [
            n for n in names if n in _NOT_SOURCE or n.endswith(".egg-info") or n.endswith(".pyc")])
        tries = [["--no-build-isolation"], []]  # this environment's setuptools first (fast, offline)
        errors = []
        for extra in tries:
            p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *extra, "-w", str(dest),
                                str(src)], capture_output=True, text=True)
            wheels = sorted(Path(dest).glob("posgrade-*.whl"))
            if p.returncode == 0 and wheels:
                return wheels[-1]
            errors.append((p.stderr or p.stdout).strip().splitlines()[-1:] or ["pip wheel failed"])
    raise RuntimeError(f"could not build posgrade's wheel from {root}: {errors[-1][0]}")


def _is_spec(install):
    """A pip requirement (used as given), as opposed to a package file to bundle."""
    return bool(install) and not Path(install).expanduser().suffix in (".whl", ".gz", ".zip")


def package_to_bundle(opts, build_dir):
    """(path of the posgrade package file to bundle, a sentence saying where it came from), or
    (None, "") when --install gave a pip requirement. CheckError where there is nothing to bundle."""
    from posgrade.loop.check import CheckError

    import posgrade

    if _is_spec(opts.install):
        return None, ""
    if opts.install:
        path = Path(opts.install).expanduser().resolve()
        if not path.is_file():
            raise CheckError(f"--install {opts.install}: no such file (give a posgrade wheel or sdist, or a pip "
                             "requirement such as 'posgrade @ git+https://github.com/ORG/posgrade@TAG')")
        return path, f"given with --install: {path}"
    root = kit_checkout()
    if root is None:
        raise CheckError(
            f"posgrade {posgrade.__version__} runs from an installed package, not from a checkout of its source, "
            "so there is no wheel to bundle and posgrade is not on PyPI: pass --install "
            f"PATH/TO/posgrade-{posgrade.__version__}-py3-none-any.whl (the wheel you installed), or --install "
            "'posgrade @ git+https://github.com/ORG/posgrade@TAG'")
    try:
        return build_wheel(root, build_dir), f"built from the checkout at {root}"
    except RuntimeError as err:
        raise CheckError(f"{err}; build it yourself (python -m build) and pass --install PATH/TO/the.whl") from None


@dataclass
class CIOptions:
    exercises: list = field(default_factory=catalog.names)
    install: str = ""  # a pip requirement, or a local wheel/sdist path (bundled for Gradescope)
    torch: str = ""
    timeout: float = 10.0
    workspace: str = "exercises"  # GitHub: where the exercise files sit in the students' repository
    python: str = "3.12"  # GitHub: the Python that setup-python installs
    cases: list = field(default_factory=list)  # Gradescope: instructor case files (paths)
    visibility: object = None  # Gradescope: an instructor.Visibility

    bundle: object = None  # the package file the generated files carry and install from (a Path), if any

    def __post_init__(self):
        self.torch = self.torch or installed_torch()

    @property
    def names(self):
        return "--all" if list(self.exercises) == catalog.names() else " ".join(self.exercises)

    @property
    def budget_minutes(self):
        """A generous wall-clock budget for grading one submission: each exercise may stop the
        worker twice at the per-call time-out, plus start-up and the cases themselves."""
        return int(5 + len(self.exercises) * (2 * self.timeout + 60) / 60) + 1


def _env():
    from posgrade.reporting.common import environment

    return environment(strict=True)


def _constraints(opts):
    return ("# Pins for installing posgrade (pip install -c this-file ...): the CPU build of torch,\n"
            f"# installed first from {TORCH_CPU_INDEX}, stays the one pip keeps.\n"
            f"torch=={opts.torch}\n")


def github_files(opts):
    """{relative path: text or Path (a file to copy)} for a Classroom template repository."""
    files = {}
    install = f'"{opts.install}"'
    if opts.bundle is not None:
        rel = f".github/posgrade/{Path(opts.bundle).name}"
        files[rel] = Path(opts.bundle)
        install = rel
    files[".github/workflows/classroom.yml"] = _env().get_template("github-classroom.yml.j2").render(
        python=opts.python, torch=opts.torch, torch_index=TORCH_CPU_INDEX, install=install,
        names=opts.names, workspace=opts.workspace, timeout=f"{opts.timeout:g}",
        grade_minutes=opts.budget_minutes, job_minutes=opts.budget_minutes + 15)
    files[".github/posgrade-constraints.txt"] = _constraints(opts)
    return files


def gradescope_files(opts, out_label="gradescope-autograder"):
    """{relative path: text or Path (a file to copy)} for a Gradescope autograder zip."""
    env = _env()
    files = {}
    install, bundled = f'"{opts.install}"', ""
    if opts.bundle is not None:
        bundled = Path(opts.bundle).name
        files[bundled] = Path(opts.bundle)
        install = f'"$AG/source/{bundled}"'
    cases = []
    for c in opts.cases:
        files[f"cases/{Path(c).name}"] = Path(c)
        cases.append(Path(c).name)
    if opts.visibility is not None:
        v = opts.visibility
        doc = {"default": v.default, "private": v.private, "cases": {text: vis for text, _, vis in v.rules}}
        if v.results:
            doc["results"] = v.results
        if v.stdout:
            doc["stdout"] = v.stdout
        files["visibility.json"] = json.dumps(doc, indent=2) + "\n"
    common = dict(torch=opts.torch, torch_index=TORCH_CPU_INDEX, install_arg=install, names=opts.names,
                  timeout=f"{opts.timeout:g}", cases=cases, visibility=opts.visibility is not None,
                  bundled=bundled, out=out_label, minutes=opts.budget_minutes,
                  graded="every exercise" if opts.names == "--all" else ", ".join(opts.exercises))
    files["setup.sh"] = env.get_template("gradescope-setup.sh.j2").render(**common)
    files["run_autograder"] = env.get_template("gradescope-run_autograder.j2").render(**common)
    files["constraints.txt"] = _constraints(opts)
    files["README.txt"] = env.get_template("gradescope-README.txt.j2").render(**common)
    return files


def existing(out, files):
    return [rel for rel in files if (Path(out) / rel).exists()]


def write_files(out, files):
    out = Path(out)
    written = []
    for rel, content in files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, dest)
        else:
            dest.write_text(content, encoding="utf-8", newline="\n")
        if Path(rel).name in EXECUTABLE:
            dest.chmod(dest.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(dest)
    return written


def write_zip(path, files):
    """The autograder zip Gradescope wants: the files at its top level, scripts executable."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for rel, content in sorted(files.items()):
            info = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if Path(rel).name in EXECUTABLE else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            data = content.read_bytes() if isinstance(content, Path) else content.encode("utf-8")
            z.writestr(info, data)


# -- the commands (below the CLI's parsing) ----------------------------------------------------

def options(exercises, install, torch_version, timeout, **extra):
    """CIOptions from the command line's values; CheckError for an unknown exercise."""
    from posgrade.loop.check import exercise

    for name in exercises:
        exercise(name)
    names = [n for n in catalog.names() if n in exercises] if exercises else catalog.names()
    return CIOptions(exercises=names, install=install or "", torch=torch_version or "", timeout=timeout, **extra)


def _write_checked(out, files, force):
    from posgrade.loop.check import CheckError

    clash = existing(out, files)
    if clash and not force:
        raise CheckError(f"{out} already has {', '.join(clash)}; add --force to overwrite")
    return write_files(out, files)


def _bundled(opts, build_dir, where):
    """Fill opts.bundle; the line saying what the files carry."""
    opts.bundle, origin = package_to_bundle(opts, build_dir)
    if opts.bundle is None:
        return (f"pip installs {opts.install} as given: make sure the class's CI can reach it "
                "(without --install, the files carry a posgrade wheel instead)")
    return f"bundled {Path(opts.bundle).name} ({origin}) as {where}{Path(opts.bundle).name}: CI installs posgrade from it"


def write_github(out, opts, force=False):
    """`posgrade ci github`: write the workflow (and the bundled wheel) into out/.github/; lines to print."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="posgrade-wheel-") as build_dir:
        note = _bundled(opts, build_dir, ".github/posgrade/")
        lines = [f"wrote {path}" for path in _write_checked(Path(out), github_files(opts), force)]
    lines.append(note)
    lines.append(f"Commit them to the assignment's template repository; students' pushes are graded with "
                 f"{opts.names} from {opts.workspace}/ and the reporter sends Classroom the points.")
    return lines


def write_gradescope(out, opts, zip_path=None, force=False):
    """`posgrade ci gradescope`: write the autograder files (and the zip); lines to print."""
    import tempfile

    from posgrade.loop.check import CheckError

    if zip_path and Path(zip_path).exists() and not force:
        raise CheckError(f"{zip_path} exists; add --force to overwrite")
    with tempfile.TemporaryDirectory(prefix="posgrade-wheel-") as build_dir:
        note = _bundled(opts, build_dir, "")
        files = gradescope_files(opts, out_label=out)
        lines = [f"wrote {path}" for path in _write_checked(Path(out), files, force)]
        if zip_path:
            write_zip(zip_path, files)
            lines.append(f"wrote {zip_path}: upload it as the assignment's autograder")
        else:
            lines.append(f"Zip the files (cd {out} && zip -r ../posgrade-autograder.zip .) and upload the zip as "
                         "the assignment's autograder; see README.txt there.")
    lines.insert(-1, note)
    return lines
