"""`posgrade ci github|gradescope`: the files a class needs to grade with posgrade in CI.

    github      .github/workflows/classroom.yml (GitHub Actions workflow for a Classroom
                assignment's template repository) and .github/posgrade-constraints.txt
    gradescope  setup.sh, run_autograder, constraints.txt, README.txt (how to zip and upload),
                and, when given, the private cases (cases/), the visibility file (as JSON)
                and a posgrade wheel or sdist to install (bundled)

Both install posgrade with the CPU build of torch: torch first from PyTorch's CPU index,
pinned in the constraints file, then posgrade with `-c` that file so pip keeps that torch.
The texts are jinja2 templates in templates/.
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


def default_install():
    import posgrade

    return f"posgrade=={posgrade.__version__}"


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

    def __post_init__(self):
        self.install = self.install or default_install()
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


def _is_local_package(spec):
    p = Path(spec).expanduser()
    return p.suffix in (".whl", ".gz", ".zip") and p.is_file()


def github_files(opts):
    """{relative path: text} for a Classroom template repository."""
    workflow = _env().get_template("github-classroom.yml.j2").render(
        python=opts.python, torch=opts.torch, torch_index=TORCH_CPU_INDEX, install=opts.install,
        names=opts.names, workspace=opts.workspace, timeout=f"{opts.timeout:g}",
        grade_minutes=opts.budget_minutes, job_minutes=opts.budget_minutes + 15)
    return {".github/workflows/classroom.yml": workflow, ".github/posgrade-constraints.txt": _constraints(opts)}


def gradescope_files(opts, out_label="gradescope-autograder"):
    """{relative path: text or Path (a file to copy)} for a Gradescope autograder zip."""
    env = _env()
    files = {}
    install, bundled = opts.install, ""
    if _is_local_package(opts.install):
        src = Path(opts.install).expanduser()
        bundled = src.name
        files[bundled] = src
        install = f"/autograder/source/{bundled}"
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
    common = dict(torch=opts.torch, torch_index=TORCH_CPU_INDEX, install=install, names=opts.names,
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


def write_github(out, opts, force=False):
    """`posgrade ci github`: write the workflow into out/.github/; lines to print."""
    lines = [f"wrote {path}" for path in _write_checked(Path(out), github_files(opts), force)]
    lines.append(f"Commit them to the assignment's template repository; students' pushes are graded with "
                 f"{opts.names} from {opts.workspace}/ and the reporter sends Classroom the points.")
    if opts.install == default_install():
        lines.append(f"pip installs {opts.install}; if your posgrade comes from elsewhere, rerun with "
                     "--install SPEC (a git URL or a package file).")
    return lines


def write_gradescope(out, opts, zip_path=None, force=False):
    """`posgrade ci gradescope`: write the autograder files (and the zip); lines to print."""
    from posgrade.loop.check import CheckError

    files = gradescope_files(opts, out_label=out)
    lines = [f"wrote {path}" for path in _write_checked(Path(out), files, force)]
    if zip_path:
        if Path(zip_path).exists() and not force:
            raise CheckError(f"{zip_path} exists; add --force to overwrite")
        write_zip(zip_path, files)
        lines.append(f"wrote {zip_path}: upload it as the assignment's autograder")
    else:
        lines.append(f"Zip the files (cd {out} && zip -r ../posgrade-autograder.zip .) and upload the zip as the "
                     "assignment's autograder; see README.txt there.")
    return lines
