"""The daemons' commands on a `foreman` group: the whole command line's (foreman.cli.app), and alone the one each
daemon starts from (foreman.cli.main), since whatever a daemon imports stays in its memory for its whole life."""

from __future__ import annotations

import typer

from foreman.cli import daemons, service


def add_daemons(app: typer.Typer) -> None:
    app.command()(daemons.controller)
    # NB: a group that runs the daemon when no subcommand is given: `foreman worker [OPTIONS]` is unchanged
    worker = typer.Typer(invoke_without_command=True, no_args_is_help=False)
    worker.callback()(daemons.worker)
    worker.command("install-service")(service.install_service)
    app.add_typer(worker, name="worker")
    app.command()(daemons.notifier)
