"""The `foreman` group itself: its help, `--version`, and what every command starts with."""

from __future__ import annotations

from typing import Annotated

import typer

from foreman.api import PACKAGE_VERSION
from foreman.api.runtime.daemon import configure_logging
from foreman.cli.terminal import emit


def _print_version(asked: bool) -> None:
    if asked:
        emit(f"foreman {PACKAGE_VERSION}")
        raise typer.Exit()


def _every_command(
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")
    ] = False,
) -> None:
    # NB: a person at a terminal gets one `error:` line for a failure, not the retry warnings before it (those are
    # for daemons' logs); the daemons configure their own logging when they start.
    configure_logging(json=False, level="critical")


def foreman_app() -> typer.Typer:
    """An empty `foreman` group; the commands are added by whoever builds the command line."""
    app = typer.Typer(
        name="foreman",
        help="Capability-aware dispatcher for agentic tasks on Kubernetes.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_every_command)
    return app
