"""The sandbox's decisions as pure functions: what is bound, what never is, the limits, what an exit means."""

from __future__ import annotations

import ast
import signal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from foreman.worker.sandbox import policy
from foreman.worker.sandbox.policy import CommandLimits, Confinement, Counters, Enforcement

HOME = "/home/worker"
SECRETS = (*policy.home_secrets(HOME), *policy.HOST_SECRETS, "/w")
CONFINEMENT = Confinement("/w/t-1/work", "/w/t-1/home", ("/usr", "/etc/ssl"), links=(("/bin", "usr/bin"),))


def test_secrets_their_parents_and_their_insides_are_never_visible() -> None:
    candidates = [
        "/usr", "/", "/home", HOME, f"{HOME}/.pyenv", f"{HOME}/.ssh", f"{HOME}/.kube/bin", "/var/run", "/w",
        "/w/t-2/work", "relative/bin", "/usr/../root", "/usr", "/opt/tool/bin",
    ]  # fmt: skip
    shown = policy.visible(candidates, secrets=SECRETS, hidden_above=(HOME,))
    assert shown == ("/usr", f"{HOME}/.pyenv", "/opt/tool/bin")


@given(
    st.lists(st.sampled_from(["", "home", "worker", ".ssh", ".kube", "config", "w", "t-1", "usr", ".."]), max_size=5)
)
def test_no_visible_path_exposes_a_secret(parts: list[str]) -> None:
    candidate = "/" + "/".join(parts)
    for path in policy.visible([candidate], secrets=SECRETS, hidden_above=(HOME,)):
        for secret in (*SECRETS, HOME):
            assert path != secret
            assert not secret.startswith(path.rstrip("/") + "/")


def test_bwrap_binds_the_system_read_only_the_workspace_writable_and_keeps_env_off_its_command_line() -> None:
    argv = policy.bwrap_argv("/usr/bin/bwrap", CONFINEMENT)
    assert argv[-1] == "--"
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent"} <= set(argv)
    assert argv[argv.index("--cap-drop") + 1] == "ALL"
    joined = " ".join(argv)
    assert "--bind /w/t-1/work /w/t-1/work" in joined
    assert "--ro-bind-try /usr /usr" in joined
    assert "--symlink usr/bin /bin" in joined
    assert not {"--setenv", "--clearenv"} & set(argv)
    assert "--unshare-net" not in policy.bwrap_argv("bwrap", Confinement("/w", "/h", (), network="host"))


def test_seatbelt_profile_denies_by_default_and_takes_paths_as_parameters() -> None:
    profile, parameters = policy.seatbelt_profile(Confinement('/Users/a "b"/work', "/Users/a/home", ("/opt/x",)))
    assert profile.startswith("(version 1)\n(deny default)")
    assert '"b"' not in profile  # never spliced into the profile's text
    assert parameters[:2] == ["-D", 'WORKSPACE=/Users/a "b"/work']
    assert '(allow file-read* (subpath (param "READ_0")))' in profile
    assert "(allow network*)\n" not in profile
    assert "(allow network*)\n" in policy.seatbelt_profile(Confinement("/w", "/h", (), network="host"))[0]


def test_limits_leave_memory_and_processes_to_a_cgroup_where_there_is_one() -> None:
    limits = CommandLimits.model_validate({"memoryMiB": 512, "processes": 32})
    with_cgroup = policy.prlimit_argv("prlimit", limits, Enforcement(cgroup=True, rlimits=True))
    assert not any(arg.startswith(("--as", "--nproc")) for arg in with_cgroup)
    without = policy.prlimit_argv("prlimit", limits, Enforcement(cgroup=False, rlimits=True))
    assert {f"--as={512 * 1024 * 1024}", "--nproc=32"} <= set(without)
    assert Enforcement(cgroup=True, rlimits=False).of("cpu") is None


def test_what_an_exit_means() -> None:
    limits = CommandLimits()
    assert policy.limit_hit(0, limits, Counters(oom_kills=1)) == "killed: memory limit 2 GiB"
    assert policy.limit_hit(-signal.SIGXCPU, limits, Counters()) == "killed: CPU limit 600 s"
    assert policy.limit_hit(128 + signal.SIGXFSZ, limits, Counters()) == "killed: file size limit 1 GiB"
    assert "process limit 256 reached" in (policy.limit_hit(1, limits, Counters(pid_limit_hits=3)) or "")
    assert "file size limit" in (policy.limit_hit(1, limits, Counters(), "OSError: [Errno 27] File too large") or "")
    assert policy.limit_hit(0, limits, Counters(), "File too large") is None  # a program may say it and succeed
    assert policy.limit_hit(1, limits, Counters()) is None
    assert policy.limit_hit(None, limits, Counters()) is None


def test_join_and_ulimit_take_paths_and_values_as_arguments() -> None:
    argv = policy.join_argv(["/sys/fs/cgroup/memory/x/cgroup.procs", "/sys/fs/cgroup/pids/x/cgroup.procs"])
    assert [*argv[:2], argv[-1]] == ["/bin/sh", "-c", "--"]
    assert "/sys/fs/cgroup" not in argv[2]
    assert policy.ulimit_argv(CommandLimits())[4:8] == ["600", str(1024 * 2048), "1024", "256"]


def test_the_sandbox_is_the_only_way_an_agent_starts_a_process() -> None:
    """Whoever calls a plain subprocess from the agent's tools again makes this fail: every process the agent
    starts goes through foreman.worker.sandbox (its process module is the one place that spawns)."""
    worker = Path(__file__).resolve().parents[4] / "worker"
    spawning = {
        "create_subprocess_exec", "create_subprocess_shell", "subprocess_exec", "subprocess_shell", "Popen", "run",
        "call", "check_call", "check_output", "system", "popen", "spawnv", "execv", "execvp", "fork",
    }  # fmt: skip
    allowed = {worker / "sandbox" / "process.py", worker / "agent" / "git.py"}  # the worker's own git
    offenders = []
    for path in [
        *(worker / "agent").rglob("*.py"),
        worker / "executors" / "agent.py",
        *(worker / "sandbox").rglob("*.py"),
    ]:
        if path in allowed:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            called = isinstance(node, ast.Attribute) and node.attr in spawning and isinstance(node.value, ast.Name)
            if called and node.value.id in ("asyncio", "subprocess", "os", "loop"):  # type: ignore[attr-defined]
                offenders.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom | ast.Import) and any(a.name == "subprocess" for a in node.names):
                offenders.append(f"{path.name}:{node.lineno} imports subprocess")
    assert offenders == []
