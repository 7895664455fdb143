"""The `posgrade` command: click commands only. Each parses its arguments, calls one function of
a layer below (loop/ for the learner's commands, classroom/ for the teacher's) and maps the
outcome to an exit code; none formats a result or starts a process itself.

Exit codes: 0 every graded case passed (or the command did its job), 1 some case failed
(or a confirmation was declined), 2 a usage or workspace error.

May import: every layer below (classroom, loop, reporting, grading, diagnosis, kit, results).
"""

import os
import sys

import click

from posgrade.cli import classroom, learner
from posgrade.cli.common import UsageFailure  # noqa: F401  (the CLI's usage error, exit code 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="posgrade")
def main():
    """Exercises on positional encodings and attention, with an autograder.

    Start with `posgrade init`, edit the files it creates, and run `posgrade check`.
    """


for command in learner.COMMANDS + classroom.COMMANDS:
    main.add_command(command)


@main.command()
def doctor():
    """Which protections against learner code are active on this machine."""
    from posgrade.grading import sandbox

    for line in sandbox.describe():
        click.echo(line)


def run():
    """The console script: main(), then, once torch is loaded, an exit that skips the interpreter's
    teardown of torch's objects (0.7 s after a grading run, measured; everything is written and
    every worker stopped before main() returns)."""
    try:
        main()
    except SystemExit as done:
        if "torch" not in sys.modules:
            raise
        code = done.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)
