"""What every command shares: the usage error (exit code 2), the --workspace option, and the
mapping of the layers' CheckError to it."""

import functools
import sys

import click

from posgrade.loop.check import CheckError


class UsageFailure(click.ClickException):
    """A one-line error for the user, exit code 2."""

    exit_code = 2


def usage_errors(fn):
    """Run fn with a CheckError from below shown as a usage error (exit code 2)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CheckError as err:
            raise UsageFailure(str(err)) from None

    return wrapper


def echo_lines(lines):
    for line in lines:
        click.echo(line)


def unicode_ok():
    return (getattr(sys.stdout, "encoding", "") or "").lower().startswith("utf")


workspace_option = click.option(
    "--workspace", "-w", metavar="DIR", default=None,
    help="The folder of exercise files (default: $POSGRADE_WORKSPACE, else ./exercises). "
         "`--workspace solutions` grades the reference solutions.")
