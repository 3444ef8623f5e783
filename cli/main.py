"""The `foreman` command. A daemon (`foreman controller`, `worker`, `notifier`) starts from a group holding only the
daemons' commands: the rest of the command line (the dashboard, the demo, install, the task commands) is no part of
a daemon, and what it imports would stay in the daemon's memory (4 MiB of the controller's)."""

from __future__ import annotations

import sys

import typer

# NB: typer (>= 0.24) vendors click as typer._click; its exceptions are not re-exported under a public name
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from foreman.cli.terminal import emit

DAEMONS = ("controller", "worker", "notifier")
REFUSED_IN_DAEMONS = ("rich", "greenlet")


def command_line(argv: list[str]) -> typer.Typer:
    """The group that runs these arguments: the daemons' alone when they start one, else the whole command line."""
    if argv[:1] and argv[0] in DAEMONS:
        # NB: structlog formats exceptions with rich whenever it can import it (typer brings it in): 3 MiB of each
        # daemon, never used, as the daemons' logs format exceptions as text before any renderer sees them; and its
        # deprecated thread-local context imports greenlet where something installed it (1 MiB)
        for unused in REFUSED_IN_DAEMONS:
            sys.modules.setdefault(unused, None)  # type: ignore[arg-type]  # NB: None is how an import is refused
        from foreman.cli.daemon_commands import add_daemons
        from foreman.cli.group import foreman_app

        daemons = foreman_app()
        add_daemons(daemons)
        return daemons
    from foreman.cli.app import app

    return app


def main() -> None:
    """The `foreman` command. A mistake in the arguments is one `error:` line and exit 2, like any other mistake
    (click would print a usage block, or typer a boxed panel)."""
    app = command_line(sys.argv[1:])
    from foreman.cli.errors import USER_ERROR  # NB: after the choice: it imports structlog

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as help_asked:
        emit(help_asked.ctx.get_help() if help_asked.ctx else "")
        code = 0
    except UsageError as error:
        where = f" (see `{error.ctx.command_path} --help`)" if error.ctx else ""
        emit(f"error: {error.format_message()}{where}", err=True)
        code = USER_ERROR
    except typer.Abort:
        code = 130
    sys.exit(code or 0)
