"""Cross-field rules: one Rule per check, refused by the model and (as CEL in the CRD) by the apiserver in the same
words; older servers get the CRDs without CEL (features.for_server)."""

from typing import Any

import pytest
from pydantic import ValidationError

from foreman.api.http.features import (
    CEL_VALIDATION,
    CHILD_TASK_RULE,
    SELECTABLE_FIELDS,
    VALIDATING_ADMISSION_POLICY,
    Release,
    Selection,
    for_server,
    release_of,
    tasks_on_node,
    writes_node_label,
)
from foreman.api.models.agents import Agent
from foreman.api.models.base import STORED, Model
from foreman.api.models.nodes import FleetNode
from foreman.api.models.notify import CloudEventsSink, NotifyEntry, WebhookSink
from foreman.api.models.schedules import TaskSchedule, TaskScheduleSpec
from foreman.api.models.tasks import AgenticTask, AgenticTaskSpec
from foreman.api.tooling.crd import all_crds
from foreman.api.tooling.manifests import (
    AGENT_SCHEDULES,
    admission,
    install_manifests,
)
from tests.malformed import ACCEPTED, REFUSED, Refused

MODELS: dict[str, type[Model]] = {"AgenticTask": AgenticTask, "TaskSchedule": TaskSchedule}
SINK_MODELS = (NotifyEntry, WebhookSink, CloudEventsSink)


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_the_model_refuses_with_the_rules_message(case: Refused) -> None:
    with pytest.raises(ValidationError) as caught:
        MODELS[case.resource].model_validate(case.body("selfish"))
    assert case.message in str(caught.value)
    assert case.message.startswith("spec.")  # names the field to fix


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_what_a_server_stored_is_read_back_whatever_the_rules_say(case: Refused) -> None:
    """An object a server without CEL stored (or from before a rule) is a fact the daemons handle, not input."""
    assert MODELS[case.resource].model_validate(case.body("selfish"), context=STORED).metadata.name == "selfish"


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_the_model_takes_objects_right_at_the_bounds(case: Refused) -> None:
    MODELS[case.resource].model_validate(case.body())


def test_every_rule_has_a_refused_case() -> None:
    rules = [rule for model in (AgenticTask, AgenticTaskSpec, TaskScheduleSpec, *SINK_MODELS) for rule in model.rules]
    assert {rule.message for rule in rules} == {case.message for case in REFUSED}
    assert FleetNode.rules == Agent.rules == ()


def _validations(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        return node.get("x-kubernetes-validations", []) + [v for value in node.values() for v in _validations(value)]
    if isinstance(node, list):
        return [v for value in node for v in _validations(value)]
    return []


def test_the_crds_carry_each_rule_as_cel_on_its_models_node() -> None:
    crds = {crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for crd in all_crds()}
    task, schedule = crds["AgenticTask"], crds["TaskSchedule"]
    as_cel = [{"rule": rule.cel, "message": rule.message} for rule in AgenticTask.rules]
    assert task["x-kubernetes-validations"] == as_cel
    spec_rules = [{"rule": rule.cel, "message": rule.message} for rule in AgenticTaskSpec.rules]
    assert task["properties"]["spec"]["x-kubernetes-validations"] == spec_rules
    template = schedule["properties"]["spec"]["properties"]["taskTemplate"]["properties"]["spec"]
    assert template["x-kubernetes-validations"] == spec_rules  # a schedule's template is checked as a task's spec
    notify = task["properties"]["spec"]["properties"]["notify"]["items"]
    sink_rules = [{"rule": rule.cel, "message": rule.message} for model in SINK_MODELS for rule in model.rules]
    assert _validations(notify) == sink_rules  # each sink's entry node carries its rule
    assert _validations(crds["Agent"]["properties"]["spec"]["properties"]["notify"]) == sink_rules
    assert _validations(crds["FleetNode"]) == []


def _selectable(manifests: list[Any]) -> list[Any]:
    return [v.get("selectableFields") for m in manifests if m["kind"] == "CustomResourceDefinition"
            for v in m["spec"]["versions"]]  # fmt: skip


def test_older_servers_get_what_they_take_of_the_manifests() -> None:
    manifests = install_manifests()
    kinds = [m["kind"] for m in manifests]
    policies = len(admission())
    assert kinds[-policies:] == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"] * (policies // 2)
    assert _selectable(manifests) == [
        [{"jsonPath": ".status.assignedNode"}, {"jsonPath": ".status.phase"}],
        *[None] * 4,
    ]
    assert for_server(manifests, Release(1, 37)) is manifests
    assert for_server(manifests, SELECTABLE_FIELDS) is manifests
    at_130 = for_server(manifests, VALIDATING_ADMISSION_POLICY)
    assert [m["kind"] for m in at_130] == kinds
    assert _selectable(at_130) == [None] * 5
    assert _validations(at_130) == _validations(manifests)
    without_policy = for_server(manifests, Release(1, 29))
    # NB: with the policies goes what only they bound: a worker's right to make TaskSchedules
    bounded = [m for m in manifests[:-policies] if m["metadata"]["name"].startswith(AGENT_SCHEDULES)]
    assert [(m["kind"], m["metadata"]["name"]) for m in bounded] == [
        ("ClusterRole", AGENT_SCHEDULES), ("ClusterRoleBinding", AGENT_SCHEDULES),
    ]  # fmt: skip
    assert [(m["kind"], m["metadata"]["name"]) for m in without_policy] == [
        (m["kind"], m["metadata"]["name"]) for m in manifests[:-policies] if m not in bounded
    ]
    assert _validations(for_server(manifests, CEL_VALIDATION)) == _validations(manifests)
    old = for_server(manifests, Release(1, 20))
    assert _validations(old) == []
    assert _selectable(old) == [None] * 5
    assert _validations(manifests) != []  # not changed in place
    # NB: without admission, no worker role may create or patch tasks (an agent's children need the policy)
    kept = [m for m in manifests[:-policies] if m["kind"] != "CustomResourceDefinition" and m not in bounded]
    unguarded = [{**m, "rules": [r for r in m["rules"] if r != CHILD_TASK_RULE]} if "rules" in m else m for m in kept]
    assert [m for m in old if m["kind"] != "CustomResourceDefinition"] == unguarded
    assert [m for m in without_policy if m["kind"] != "CustomResourceDefinition"] == unguarded
    assert unguarded != kept
    worker = next(m for m in old if m["kind"] == "ClusterRole" and m["metadata"]["name"] == "foreman-worker")
    assert not any("create" in rule["verbs"] and "agentictasks" in rule["resources"] for rule in worker["rules"])


def test_workers_select_by_field_where_the_server_can_and_the_controller_then_writes_no_label() -> None:
    current, floor = tasks_on_node("gpu-1", Release(1, 37)), tasks_on_node("gpu-1", Release(1, 20))
    assert current == Selection(field_selector="status.assignedNode=gpu-1,status.phase!=Succeeded,status.phase!=Failed")
    assert floor == Selection(label_selector="foreman.dev/node=gpu-1")
    assert tasks_on_node("n", SELECTABLE_FIELDS) == tasks_on_node("n", Release(1, 37))
    assert tasks_on_node("n", Release(1, 30)) == Selection(label_selector="foreman.dev/node=n")
    assert [writes_node_label(Release(1, m)) for m in (20, 30, 31, 37)] == [True, True, False, False]


@pytest.mark.parametrize(
    ("answer", "release"),
    [
        ({"major": "1", "minor": "37", "gitVersion": "v1.37.2"}, Release(1, 37)),
        ({"major": "1", "minor": "20", "gitVersion": "v1.20.2"}, Release(1, 20)),
        ({"major": "1", "minor": "30+", "gitVersion": "v1.30.4-eks-a737599"}, Release(1, 30)),
        ({"major": "1", "minor": "29+", "gitVersion": ""}, Release(1, 29)),
    ],
)
def test_the_release_is_read_from_the_version_answer(answer: dict[str, str], release: Release) -> None:
    assert release_of(answer) == release
