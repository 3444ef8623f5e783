import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from foreman.api.http.errors import NotFound, Unreachable, error_from_response
from foreman.api.models.nodes import FleetNode
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.sdk import DependencyCycleError, MissingDependencyError, creation_order
from foreman.cli.app import app
from foreman.cli.errors import UserError, one_line, user_errors
from foreman.cli.render import clean_up, delivery_rows, family_lines, nodes_table, table, task_rows
from foreman.cli.tasks import load_tasks
from foreman.cli.terminal import CONTROLS, visible
from tests.factories import node, task

runner = CliRunner()


def test_builder_makes_a_task_in_one_call() -> None:
    task = AgenticTask.new(
        "fix", prompt="Fix it", accelerator="cuda", min_ram_gb=48, depends_on=["plan"], payload={"sleepSeconds": 1}
    )
    wire = task.to_wire()
    assert wire["spec"]["requiredCapability"]["accelerator"] == "cuda"
    assert wire["spec"]["payload"] == {"sleepSeconds": 1, "prompt": "Fix it", "inputs": {}}
    assert AgenticTask.new(prompt="x").metadata.generate_name == "task-"


def test_a_misspelled_keyword_is_refused_not_put_into_the_payload() -> None:
    with pytest.raises(TypeError, match="accelerater"):
        AgenticTask.new(accelerater="cuda", min_ram=48)  # type: ignore[call-arg]


def test_graph_order_is_upstream_first_and_bad_graphs_are_refused() -> None:
    a, b, c = AgenticTask.new("a"), AgenticTask.new("b", depends_on=["a"]), AgenticTask.new("c", depends_on=["a", "b"])
    assert [t.name for t in creation_order([c, b, a])] == ["a", "b", "c"]
    with pytest.raises(DependencyCycleError, match="cycle"):
        creation_order([AgenticTask.new("x", depends_on=["y"]), AgenticTask.new("y", depends_on=["x"])])
    with pytest.raises(MissingDependencyError, match="ghost"):
        creation_order([AgenticTask.new("x", depends_on=["ghost"])])
    assert [t.name for t in creation_order([AgenticTask.new("x", depends_on=["old"])], existing=["old"])] == ["x"]


def test_load_tasks_names_the_document_and_field(tmp_path: Path) -> None:
    tasks = tmp_path / "f.yaml"
    tasks.write_text(
        "kind: AgenticTask\nmetadata: {name: a}\nspec: {kind: verify}\n---\nkind: AgenticTask\n"
        "metadata: {name: b}\nspec: {kind: verify, requiredCapability: {accelerator: tpu}}\n"
    )
    with pytest.raises(UserError, match=r"f.yaml, document 2: spec.requiredCapability.accelerator"):
        load_tasks(str(tasks))
    tasks.write_text("kind: FleetNode\n")
    with pytest.raises(UserError, match="expected kind AgenticTask, got FleetNode"):
        load_tasks(str(tasks))


def test_unknown_fields_are_refused_as_kubectl_does(tmp_path: Path) -> None:
    """A typo must not be dropped silently (the task would run anywhere); free-form payload keys stay free."""
    tasks = tmp_path / "typo.yaml"
    tasks.write_text(
        "kind: AgenticTask\nmetadata: {name: a, labels: {x: y}}\n"
        "spec: {kind: verify, payload: {anything: 1, inputs: {deep: {x: 1}}}, requiredCapabilty: {accelerator: cuda}}\n"
    )
    with pytest.raises(UserError, match=r"unknown field spec.requiredCapabilty \(did you mean requiredCapability\?\)"):
        load_tasks(str(tasks))
    tasks.write_text("kind: AgenticTask\nmetadata: {name: a}\nspec: {kind: verify, requiredCapability: {minRam: 4}}\n")
    with pytest.raises(UserError, match=r"unknown field spec.requiredCapability.minRam"):
        load_tasks(str(tasks))
    tasks.write_text("kind: AgenticTask\nmetadata: {name: a}\nspec: {kind: verify, payload: {anything: 1}}\n")
    assert load_tasks(str(tasks))[0].spec.payload.model_extra == {"anything": 1}


def test_a_folder_is_read_like_kubectl_apply_f_dir(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("kind: AgenticTask\nmetadata: {name: b}\nspec: {kind: verify}\n")
    (tmp_path / "a.yml").write_text("kind: AgenticTask\nmetadata: {name: a}\nspec: {kind: verify}\n")
    (tmp_path / "notes.txt").write_text("not YAML: ignored, as kubectl does")
    assert [task.name for task in load_tasks(str(tmp_path))] == ["a", "b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"no .yaml, .yml, .json files"):
        load_tasks(str(empty))


def test_user_mistakes_are_one_line_and_exit_2(tmp_path: object) -> None:
    for args, expected in [
        (["submit", "-f", "/nope.yaml"], "error: no such file: /nope.yaml"),
        (["get", "things", "--kubeconfig", "/nope"], "error: get what?"),
        (["get", "tasks", "--kubeconfig", "/nope"], "error: kubeconfig /nope does not exist"),
    ]:
        outcome = runner.invoke(app, args)
        assert outcome.exit_code == 2, outcome.output
        assert outcome.output.strip().startswith(expected)
        assert len(outcome.output.strip().splitlines()) == 1


def test_files_the_cli_may_not_read_or_cannot_find_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A kubeconfig mounted into the image unreadable to its user raised PermissionError, a traceback; the image's
    read-only root without a writable /tmp raised a FileNotFoundError naming no file ("no such file: None")."""

    @user_errors
    def reading(error: OSError) -> None:
        raise error

    for error, expected in [
        (PermissionError(13, "Permission denied", "/etc/foreman/kubeconfig"), "permission denied: /etc/foreman/"),
        (FileNotFoundError(2, "No usable temporary directory found in ['/tmp']"), "[Errno 2] No usable temporary"),
    ]:
        with pytest.raises(typer.Exit) as exited:
            reading(error)
        assert exited.value.exit_code == 2
        said = capsys.readouterr().err
        assert said.startswith(f"error: {expected}")
        assert len(said.strip().splitlines()) == 1


def test_error_lines_for_cluster_trouble() -> None:
    assert "foreman install" in one_line(error_from_response(404, "404 page not found"))
    assert "foreman install" in one_line(
        error_from_response(404, {"reason": "NotFound", "message": "the server could not find the requested resource"})
    )
    assert one_line(NotFound('agentictasks.foreman.dev "x" not found')) == 'agentictasks.foreman.dev "x" not found'
    assert "is the cluster up" in one_line(Unreachable("connection refused"))


def test_every_command_has_an_example_in_its_help() -> None:
    """The README promises it; `dev down` and `dev status` had none."""

    def commands(command: Any, path: list[str]) -> Iterator[tuple[str, str]]:
        children = getattr(command, "commands", None)
        if not children:
            yield " ".join(path), command.help or ""
        for name, child in (children or {}).items():
            yield from commands(child, [*path, name])

    missing = [path for path, text in commands(typer.main.get_command(app), []) if "Example:" not in text]
    assert missing == []


def test_the_node_table_shows_an_accelerator_count_only_when_known() -> None:
    declared = node("declared", accelerator="cuda")  # `--accelerator cuda`, no count: it read "cuda x0"
    detected = FleetNode.model_validate(
        {"metadata": {"name": "detected"}, "status": {"capability": {"accelerator": "cuda", "acceleratorCount": 2}}}
    )
    cells = [re.split(r"\s{2,}", line) for line in nodes_table([declared, detected]).splitlines()[1:]]
    rows = {row[0]: row[2] for row in cells}
    assert rows == {"declared": "cuda", "detected": "cuda x2"}


@pytest.mark.parametrize(
    ("sandbox", "shown"),
    [
        (None, "-"),
        ({"kind": "bubblewrap", "version": "0.8.0"}, "bubblewrap"),
        ({"kind": "bubblewrap", "network": "host"}, "bubblewrap+network"),
        ({"kind": "none", "network": "host"}, "UNCONFINED"),
        ({"kind": "unavailable", "message": "bwrap is not installed"}, "no commands"),
    ],
)
def test_the_node_table_says_how_agent_commands_are_confined(sandbox: dict[str, str] | None, shown: str) -> None:
    capability = {"executors": ["agent"], **({"sandbox": sandbox} if sandbox else {})}
    listed = FleetNode.model_validate({"metadata": {"name": "n"}, "status": {"capability": capability}})
    header, row = (re.split(r"\s{2,}", line) for line in nodes_table([listed]).splitlines())
    assert dict(zip(header, row, strict=False))["SANDBOX"] == shown


def test_task_tables_name_the_namespace_with_all_namespaces_and_say_why_a_task_waits() -> None:
    blocked = {
        "type": "Blocked",
        "status": "True",
        "reason": "NoFittingNode",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    waiting = task("waiting", namespace="a", conditions=[blocked], priority=5, dependsOn=["up"])
    failed = task("failed", phase="Failed", namespace="b", failureReason="Timeout")
    rows = task_rows([failed, waiting], namespaces=True, wide=True)
    assert rows[0][:2] == ("NAMESPACE", "NAME")
    assert rows[0][-4:] == ("PRIORITY", "ACCELERATOR", "DEPENDS-ON", "EXECUTOR")
    by_name = {row[1]: row for row in rows[1:]}
    assert (by_name["waiting"][0], by_name["waiting"][6]) == ("a", "NoFittingNode")
    assert by_name["waiting"][-4:] == ("5", "any", "up", "stub")
    assert by_name["failed"][6] == "Timeout"
    assert task_rows([failed])[0][0] == "NAME"  # one namespace: no column for it


def test_describe_says_when_a_task_is_cleaned_up_as_far_as_the_task_says() -> None:
    assert "(unset: kept; the shipped controller Deployment: a day after success" in clean_up(task("a"))
    running = task("b", phase="Running", ttlSecondsAfterFinished=60)
    assert clean_up(running) == "60 s after it finishes (spec.ttlSecondsAfterFinished)"
    done = task("c", phase="Failed", ttlSecondsAfterFinished=60, finishedAt="2026-01-01T00:00:00Z")
    assert clean_up(done).startswith("at 2026-01-01T00:01:00+00:00, 60 s after it finishes")


@given(st.text())
def test_nothing_visible_carries_a_control_code(text: str) -> None:
    shown = visible(text)
    assert not CONTROLS.search(shown)
    assert not CONTROLS.search(visible(text, one_line=True))
    assert "\n" not in visible(text, one_line=True)
    assert visible("plain\ttext\nnext line") == "plain\ttext\nnext line"
    assert visible("\x1b[2J") == "\\x1b[2J"


def test_describe_lists_each_delivery_recorded_and_due() -> None:
    notify = [{"log": {}}, {"cloudevents": {"url": "https://example.com/in"}}, {"on": ["Failed"], "log": {}}]
    recorded = [{"index": 0, "sink": "log", "state": "Pending", "id": "u-0-0", "attempts": 2,
                 "lastError": "HTTP 503: busy\n\x1b[2J", "nextAttemptAt": "2026-01-01T00:01:00Z"}]  # fmt: skip
    done = task("c", phase="Succeeded", notify=notify, deliveries=recorded, finishedAt="2026-01-01T00:00:00Z")
    rows = delivery_rows(done)
    assert rows[1:] == [
        ("  0:log", "Pending", "2", "-", "2026-01-01T00:01:00+00:00", "u-0-0", "HTTP 503: busy\n\x1b[2J"),
        ("  1:cloudevents", "due", "0", "-", "now", "-", "-"),
    ]
    assert "\\x1b[2J" in table(rows)  # the receiver's words, made visible


def test_describe_shows_a_tasks_parent_and_its_children_only_those_it_owns() -> None:
    parent = AgenticTask.model_validate({"metadata": {"name": "split", "namespace": "ns", "uid": "u"},
                                         "spec": {"executor": "agent", "agentRef": "planner"}})  # fmt: skip
    labels = {"foreman.dev/created-by": "agent", "foreman.dev/parent": "split", "foreman.dev/depth": "1"}
    owner = [{"apiVersion": "foreman.dev/v1alpha1", "kind": "AgenticTask", "name": "split", "uid": "u"}]
    child = AgenticTask.model_validate({
        "metadata": {"name": "split-1", "namespace": "ns", "labels": labels, "ownerReferences": owner},
        "spec": {"executor": "agent", "agentRef": "fixer"}, "status": {"phase": "Succeeded", "verdict": "GO"},
    })  # fmt: skip
    forged = AgenticTask.model_validate({"metadata": {"name": "forged", "namespace": "ns", "labels": labels},
                                         "spec": {"executor": "agent", "agentRef": "fixer"}})  # fmt: skip
    lines = "\n".join(family_lines(parent, [child, forged]))
    assert "split-1" in lines
    assert "fixer" in lines
    assert "GO" in lines
    assert "forged" not in lines  # no ownerReference to this parent
    assert family_lines(child, [])[0].startswith("Parent:       split (created by an agent, depth 1)")
    assert family_lines(parent, []) == ["Children:     -"]
