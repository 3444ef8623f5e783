"""`foreman controller`, `worker` and `notifier` start from a group of the daemons' commands alone: the same
commands, options and help as in the whole command line, without importing the rest of it."""

import ast
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from foreman.cli.app import app
from foreman.cli.daemon_commands import add_daemons
from foreman.cli.group import foreman_app
from foreman.cli.main import DAEMONS


def daemons_group() -> typer.Typer:
    group = foreman_app()
    add_daemons(group)
    return group


@pytest.mark.parametrize(
    "argv",
    [[name, "--help"] for name in DAEMONS] + [["worker", "install-service", "--help"], ["controller", "--nope"]],
)
def test_a_daemon_reads_its_arguments_as_the_whole_command_line_does(argv: list[str]) -> None:
    alone, whole = CliRunner().invoke(daemons_group(), argv), CliRunner().invoke(app, argv)
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)


def test_the_daemons_group_holds_exactly_the_daemons() -> None:
    group = daemons_group()
    names = [command.callback.__name__ for command in group.registered_commands if command.callback]
    names += [typer_group.name for typer_group in group.registered_groups if typer_group.name]
    assert sorted(names) == sorted(DAEMONS)


NEVER_IN_A_DAEMON = ("rich", "greenlet", "plistlib", "foreman.api.tooling.localcluster")
"""What a daemon never uses and would carry in its memory for its whole life (each 0.5-3 MiB)."""


def test_a_daemon_imports_neither_the_rest_of_the_command_line_nor_what_it_never_uses() -> None:
    probe = (
        "import sys\n"
        "from foreman.cli.main import command_line\n"
        "command_line(['controller'])\n"
        "import foreman.cli.errors\n"
        "print(sorted(m for m in sys.modules if m.startswith(('foreman.cli.', *NEVER)) and sys.modules[m]))\n"
    ).replace("NEVER", repr(NEVER_IN_A_DAEMON))
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(loaded) == [
        "foreman.cli.daemon_commands",
        "foreman.cli.daemons",
        "foreman.cli.errors",
        "foreman.cli.group",
        "foreman.cli.main",
        "foreman.cli.service",
        "foreman.cli.terminal",
    ]
