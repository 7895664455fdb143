"""The teacher's commands: grade-batch, and ci github / ci gradescope."""

import click

from posgrade.cli.common import UsageFailure, echo_lines, usage_errors
from posgrade.cli.learner import instructor_files


@click.command("grade-batch")
@click.argument("directory")
@click.option("--exercise", "-e", "exercises", multiple=True, metavar="NAME",
              help="Grade only this exercise; repeat for several (default: every exercise).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Submissions graded at the same time.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of a student's code may take.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the random inputs, the same for every student (default: a new one, printed).")
@click.option("--device", type=click.Choice(["cpu", "auto", "all", "cuda"]), default="cpu", show_default=True,
              help="As for `posgrade check`.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Also run an instructor's private case files (DIR/test_*.py).")
@click.option("--out", "out_dir", metavar="DIR", default=None,
              help="Where the class reports go (default: DIRECTORY-grades beside DIRECTORY).")
@click.option("--limit", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Wall-clock seconds one submission may take in all before it is stopped.")
@click.option("--no-sandbox", is_flag=True,
              help="Grade even where learner code cannot be sandboxed here (see `posgrade doctor`).")
@usage_errors
def grade_batch(directory, exercises, jobs, timeout, seed, device, cases_path, out_dir, limit, no_sandbox):
    """Grade every submission folder under DIRECTORY, in parallel.

    Each folder directly under DIRECTORY is one student's submission (named by the folder);
    its exercise files may sit in the folder itself or up to three levels below it. Writes
    class.csv, class.json and class.html (plus each student's result and report) to --out.
    """
    from posgrade.classroom import batch
    from posgrade.grading import sandbox

    sandboxed, reason = sandbox.available()
    if not sandboxed and not no_sandbox:  # one submission could change everybody's grade: the teacher decides
        raise UsageFailure(f"learner code cannot be sandboxed on this machine ({reason}): one submission could "
                           f"change the others' files and grades. Pass --no-sandbox to grade anyway.")
    batch.grade_class(directory, exercises, jobs, timeout, seed, device, cases_path, out_dir, limit,
                      echo=lambda line, err: click.echo(line, err=err))


@click.group()
def ci():
    """Write ready-to-use CI files: `posgrade ci github`, `posgrade ci gradescope`."""


def ci_common(f):
    f = click.option("--force", is_flag=True, help="Overwrite files that already exist.")(f)
    f = click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
                     help="Seconds one call of a student's code may take.")(f)
    f = click.option("--torch", "torch_version", metavar="VERSION", default=None,
                     help="The torch version to pin (default: the one installed here).")(f)
    f = click.option("--install", metavar="SPEC", default=None,
                     help="What pip installs for posgrade: a requirement (default posgrade==<this version>), "
                          "e.g. 'posgrade @ git+https://github.com/ORG/posgrade@TAG', or a wheel/sdist file.")(f)
    f = click.option("--exercise", "-e", "exercises", multiple=True, metavar="NAME",
                     help="Grade only this exercise; repeat for several (default: every exercise).")(f)
    return f


@ci.command("github")
@click.option("--out", default=".", show_default=True, metavar="DIR",
              help="The assignment's template repository; the files go to DIR/.github/.")
@click.option("--workspace", default="exercises", show_default=True, metavar="PATH",
              help="Where the exercise files are in the students' repository.")
@click.option("--python", "python_version", default="3.12", show_default=True, help="Python for the runner.")
@ci_common
@usage_errors
def ci_github(out, workspace, python_version, exercises, install, torch_version, timeout, force):
    """A GitHub Actions workflow that grades a Classroom assignment with posgrade."""
    from posgrade.classroom import ci as ci_mod

    opts = ci_mod.options(exercises, install, torch_version, timeout, workspace=workspace, python=python_version)
    echo_lines(ci_mod.write_github(out, opts, force))


@ci.command("gradescope")
@click.option("--out", default="gradescope-autograder", show_default=True, metavar="DIR",
              help="Folder for the autograder files.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Private case files (DIR/test_*.py) to bundle and grade with.")
@click.option("--visibility", "visibility_path", metavar="FILE", default=None,
              help="Visibility file (JSON or TOML) to bundle: which cases students see, and when.")
@click.option("--zip", "zip_path", metavar="FILE", default=None,
              help="Also write the zip to upload to Gradescope.")
@ci_common
@usage_errors
def ci_gradescope(out, cases_path, visibility_path, zip_path, exercises, install, torch_version, timeout, force):
    """Gradescope's setup.sh and run_autograder (plus how to zip them) for posgrade."""
    from posgrade.classroom import ci as ci_mod

    case_files, visibility = instructor_files(cases_path, visibility_path)
    opts = ci_mod.options(exercises, install, torch_version, timeout, cases=[cf.path for cf in case_files],
                          visibility=visibility)
    echo_lines(ci_mod.write_gradescope(out, opts, zip_path, force))


COMMANDS = (grade_batch, ci)
