"""`foreman worker install-service`: the worker as a systemd unit (Linux) or launchd agent (macOS) of this host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from foreman.api.tooling.services import LAUNCHD_LABEL, UNIT, WorkerService, launchd_plist, systemd_unit
from foreman.cli.daemons import worker_config
from foreman.cli.errors import UserError, user_errors
from foreman.cli.terminal import emit


def _foreman() -> str:
    """This `foreman`, by absolute path (a service has no shell PATH to find it by)."""
    found = shutil.which("foreman")
    return str(Path(found).resolve()) if found else str(Path(sys.argv[0]).resolve())


def _home(*parts: str) -> Path:
    return Path.home().joinpath(*parts)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise UserError(f"`{' '.join(argv)}` failed: {said[-1] if said else f'exit {done.returncode}'}")


@user_errors
def install_service(
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="The host's kubeconfig (`foreman node join`; default ~/.config/foreman/kubeconfig)."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="Worker settings file (default ~/.config/foreman/worker.yaml when it exists)."),
    ] = None,
    system: Annotated[
        bool, typer.Option("--system", help="A system unit run as --run-as (Linux; needs root), not a user unit.")
    ] = False,
    run_as: Annotated[str | None, typer.Option(help="The user a --system unit runs as (default: you).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the file here and enable nothing (to review it).")
    ] = None,
    macos: Annotated[bool, typer.Option("--macos/--linux", help="Which service manager (default: this OS's).")] = (
        sys.platform == "darwin"
    ),
) -> None:
    """Write and enable this host's worker service: a systemd unit (user, or --system) on Linux, a launchd agent on
    macOS, running `foreman worker` with the kubeconfig and settings given. The settings file is checked first.

    Example:  foreman worker install-service --config ~/.config/foreman/worker.yaml
    """
    kubeconfig = (kubeconfig or _home(".config", "foreman", "kubeconfig")).expanduser().absolute()
    if not kubeconfig.exists():
        raise UserError(
            f"no kubeconfig at {kubeconfig}: make one on your admin machine with `foreman node join NAME -o FILE`, "
            "copy it here, and pass --kubeconfig"
        )
    default_config = _home(".config", "foreman", "worker.yaml")
    if config_file is None and default_config.exists():
        config_file = default_config
    if config_file is not None:
        config_file = config_file.expanduser().absolute()
        worker_config(config_file, {"overrides": {}})  # NB: a mistake in it is said now, not at the service's start
    service = WorkerService(_foreman(), str(kubeconfig), str(config_file) if config_file else None)
    if macos:
        text = launchd_plist(service.argv(), log=str(_home("Library", "Logs", "foreman-worker.log")))
        path = output or _home("Library", "LaunchAgents", f"{LAUNCHD_LABEL}.plist")
    else:
        user = (run_as or os.environ.get("SUDO_USER") or os.environ.get("USER") or "root") if system else None
        text = systemd_unit(service, run_as=user, state_dir="/var/lib/foreman")
        path = output or (Path("/etc/systemd/system") if system else _home(".config", "systemd", "user")) / UNIT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    emit(f"wrote {path}")
    if output is not None:
        return
    if macos:
        domain = f"gui/{os.getuid()}"
        subprocess.run(["launchctl", "bootout", f"{domain}/{LAUNCHD_LABEL}"], capture_output=True, check=False)
        _run(["launchctl", "bootstrap", domain, str(path)])
        emit(f"loaded {LAUNCHD_LABEL}; its log: {_home('Library', 'Logs', 'foreman-worker.log')}")
        return
    systemctl = ["systemctl", *([] if system else ["--user"])]
    _run([*systemctl, "daemon-reload"])
    _run([*systemctl, "enable", "--now", UNIT])
    emit(f"enabled and started {UNIT}; its log: journalctl {'' if system else '--user '}-u {UNIT} -f")
