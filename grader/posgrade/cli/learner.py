"""The learner's commands: init, list, check, hint, reveal, reset, watch."""

import os
import sys

import click

from posgrade.cli.common import UsageFailure, echo_lines, unicode_ok, usage_errors, workspace_option
from posgrade.loop import check as check_mod
from posgrade.loop import workspace as ws_mod
from posgrade.reporting.formats import FORMATS


@click.command()
@click.argument("directory", default="exercises", required=False)
@click.option("--notebook", is_flag=True,
              help="Write one Jupyter notebook per exercise (<name>.ipynb: the spec, the stub, a grading cell) "
                   "instead of .py files; needs nbformat (pip install 'posgrade[notebook]').")
@usage_errors
def init(directory, notebook):
    """Copy fresh exercise stubs into DIRECTORY (default ./exercises); never overwrites a file."""
    echo_lines(ws_mod.init(directory, notebook=notebook))


@click.command("list")
@workspace_option
@usage_errors
def list_(workspace):
    """The exercises in order, with your status and best score."""
    echo_lines(ws_mod.listing(workspace))


class PairedOptions(click.Command):
    """Records the order in which --format and --output appear, so that each --output can
    belong to the --format just before it (click keeps each option's values, not their mix)."""

    def parse_args(self, ctx, args):
        try:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            ctx.meta["posgrade.order"] = [p.name for p in order if p.name in ("formats_", "outputs")]
        except click.UsageError:
            pass  # the real parse below reports it
        return super().parse_args(ctx, args)


def instructor_files(cases_path, visibility_path):
    """(case files, visibility) from --cases and --visibility (classroom.instructor)."""
    from posgrade.classroom import instructor

    try:
        case_files = instructor.load_case_files(cases_path) if cases_path else []
        visibility = instructor.load_visibility(visibility_path) if visibility_path else None
    except instructor.InstructorError as err:
        raise UsageFailure(str(err)) from None
    return case_files, visibility


@click.command(cls=PairedOptions)
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Grade every exercise.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="auto", show_default=True,
              help="auto: CPU, and CUDA where present (else CUDA cases show as skipped); all: CPU and CUDA, "
                   "a GPU required; cuda: CUDA only.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Seed of the random inputs (default: a new one, printed in the report).")
@click.option("--json", "json_path", metavar="PATH", default=None, help="Also write the results as JSON to PATH.")
@click.option("--html", "html_path", metavar="PATH", default=None,
              help="Also write a self-contained HTML report with heatmaps of mismatched outputs to PATH.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of your code may take.")
@click.option("--verbose", "-v", is_flag=True, help="Explain every failure, not only the first ones.")
@click.option("--format", "formats_", multiple=True, type=click.Choice(FORMATS), metavar="FORMAT",
              help="Also write the results as FORMAT: json, gradescope, junit, github, exercism or html. Repeat it "
                   "for several; each writes to the --output that follows it, else to its default place.")
@click.option("--output", "outputs", multiple=True, metavar="PATH",
              help="Where the --format just before it writes.")
@click.option("--min-score", metavar="N|N%", default=None,
              help="Pass mark: exit 0 when the score is at least N points (or N% of the maximum), else 1. "
                   "Without it, exit 0 only when every graded case passed.")
@click.option("--cases", "cases_path", metavar="DIR", default=None,
              help="Also run an instructor's private case files (DIR/test_*.py), graded like the built-in ones.")
@click.option("--visibility", "visibility_path", metavar="FILE", default=None,
              help="JSON or TOML file that sets each case's Gradescope visibility (README: For instructors).")
@click.option("--allow-missing", is_flag=True,
              help="A missing exercise file scores 0 for that exercise instead of being a usage error (CI).")
@click.option("--no-save", is_flag=True,
              help="Do not record progress in the workspace's .posgrade/ (when grading someone else's work).")
@workspace_option
def check(names, all_, device, seed, json_path, html_path, timeout, verbose, formats_, outputs, min_score,
          cases_path, visibility_path, allow_missing, no_save, workspace):
    """Grade NAMES (default: the first exercise not yet passed)."""
    order = click.get_current_context().meta.get("posgrade.order", ["formats_"] * len(formats_))
    opts = check_mod.CheckOptions(
        names=list(names), all=all_, device=device, seed=seed, timeout=timeout, workspace=workspace,
        cases_path=cases_path or "", allow_missing=allow_missing, save=not no_save, min_score=min_score,
        summary_path=os.environ.get("GITHUB_STEP_SUMMARY") or None, verbose=verbose, unicode=unicode_ok(),
        escape="github" in formats_ or os.environ.get("GITHUB_ACTIONS") == "true")
    try:
        opts.targets = check_mod.output_targets(formats_, outputs, order, json_path, html_path)
        opts.case_files, opts.visibility = instructor_files(cases_path, visibility_path)
        outcome = check_mod.run(opts, warn=lambda line: click.echo(line, err=True))
    except check_mod.CheckError as err:
        raise UsageFailure(str(err)) from None
    except UsageFailure as err:  # --cases or --visibility: still an error result in each file
        if opts.targets:
            from posgrade.reporting import formats

            formats.write_all(opts.targets, check_mod.error_result(err.format_message(), opts.names, workspace or "",
                                                                   seed), None, opts.summary_path)
        raise
    click.echo(outcome.text, nl=False, err=outcome.failed)
    sys.exit(outcome.code)


@click.command()
@click.argument("name")
@workspace_option
@usage_errors
def hint(name, workspace):
    """Show the next hint for NAME (each call reveals one more)."""
    echo_lines(ws_mod.hint(name, workspace))


@click.command()
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask first.")
@workspace_option
@usage_errors
def reveal(name, yes, workspace):
    """Show the reference solution of NAME, with line numbers."""
    check_mod.exercise(name)
    ws_mod.workspace(workspace)
    if not yes and not click.confirm(f"Show the reference solution of {name}? Trying one more hint "
                                     f"first often teaches more", default=False):
        click.echo("Not shown.")
        sys.exit(1)
    echo_lines(ws_mod.reveal(name, workspace))


@click.command()
@click.argument("name")
@workspace_option
@usage_errors
def reset(name, workspace):
    """Replace your NAME file with a fresh stub; your file is backed up first."""
    echo_lines(ws_mod.reset(name, workspace))


@click.command()
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Grade every exercise on each save.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "all"]), default="cpu", show_default=True,
              help="Where to run the cases (cpu keeps each re-grade quick).")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Random seed of the cases, kept for the whole session (default: random).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds one call of your code may take.")
@click.option("--interval", type=click.FloatRange(min=0.05, max=10), default=0.3, show_default=True,
              help="Seconds between looks at the workspace's files.")
@click.option("--no-save", is_flag=True, help="Do not record progress in the workspace's .posgrade/.")
@workspace_option
@usage_errors
def watch(names, all_, device, seed, timeout, interval, no_save, workspace):
    """Re-grade NAMES each time a workspace file is saved, showing what changed; Ctrl-C stops.

    Without NAMES it grades the first exercise not yet passed, and moves on when it passes."""
    from posgrade.loop import watch as watch_mod

    session = watch_mod.prepare(names, all_, device, seed, timeout, interval, not no_save, workspace, unicode_ok())
    watch_mod.run(session, lambda text: click.echo(text, nl=False))


COMMANDS = (init, list_, check, hint, reveal, reset, watch)
