"""What the controller does with an agent's child (pure): a child an older version made, without its parent's
requiredCapability, takes its parent's before it is placed; one that asks less of a node than its parent is refused."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle import reasons, subtasks
from foreman.api.models.agents import AgentSpec
from foreman.api.models.tasks import AgenticTask, RequiredCapability
from foreman.controller.children import AmendChild, child_decision
from foreman.controller.rules import Fail

AGENTS = {"planner": AgentSpec.model_validate({"subtasks": {"agents": ["fixer"]}})}
CONFINED = {"sandbox": True, "minRAMGB": 8.0, "nodeSelector": {"pool": "safe"}}


def parent(capability: dict[str, Any]) -> AgenticTask:
    return AgenticTask.model_validate({
        "metadata": {"name": "parent", "namespace": "ns", "uid": "u-1"},
        "spec": {"executor": "agent", "agentRef": "planner", "requiredCapability": capability},
        "status": {"phase": "Running", "assignedNode": "n1"},
    })  # fmt: skip


def child(of: AgenticTask, capability: dict[str, Any] | None = None) -> AgenticTask:
    """The child as this version's submit_task makes it, with `capability` over its requiredCapability."""
    wire = subtasks.child_task(of, name="parent-1", agent="fixer", prompt="p", inputs={}, depends_on=[],
                               node="n1").to_wire()  # fmt: skip
    wire["metadata"]["uid"] = "c-1"
    if capability is not None:
        wire["spec"]["requiredCapability"] = capability
    return AgenticTask.model_validate(wire)


def decided(made: AgenticTask, of: AgenticTask) -> Fail | AmendChild | None:
    return child_decision(made, of, [made], AGENTS)


def test_a_child_made_before_children_inherited_the_capability_takes_its_parents() -> None:
    """The version before wrote no requiredCapability (the default): it is placed as its parent must be, not refused."""
    confined = parent(CONFINED)
    old = child(confined, {})
    assert old.spec.required_capability == RequiredCapability()
    amend = decided(old, confined)
    assert isinstance(amend, AmendChild)
    assert amend.reason == reasons.CAPABILITY_INHERITED
    assert RequiredCapability.model_validate(amend.spec["requiredCapability"]) == confined.spec.required_capability
    written = old.model_copy(update={"spec": old.spec.model_copy(update={
        "required_capability": RequiredCapability.model_validate(amend.spec["requiredCapability"])})})  # fmt: skip
    assert decided(written, confined) is None  # placed on the next pass
    assert decided(child(confined), confined) is None  # this version's child: nothing to change


def test_a_child_asking_less_confinement_than_its_parent_is_still_refused() -> None:
    confined = parent(CONFINED)
    unconfined = child(confined, {**CONFINED, "sandbox": False})
    refused = decided(unconfined, confined)
    assert isinstance(refused, Fail)
    assert refused.reason == reasons.SUBTASK_NOT_ALLOWED
    assert "spec.requiredCapability" in refused.message
    elsewhere = decided(child(confined, {"nodeSelector": {"pool": "open"}}), confined)
    assert isinstance(elsewhere, Fail)
    # an old child that is refused for another reason is refused, not amended first
    stranger = child(confined, {}).model_copy(update={"spec": child(confined, {}).spec.model_copy(update={
        "agent_ref": "stranger"})})  # fmt: skip
    assert isinstance(decided(stranger, confined), Fail)


capabilities = st.fixed_dictionaries(
    {},
    optional={
        "sandbox": st.booleans(),
        "minRAMGB": st.sampled_from([0.0, 8.0, 16.0]),
        "minContextTokens": st.sampled_from([0, 8192]),
        "nodeSelector": st.sampled_from([{}, {"pool": "safe"}, {"pool": "open"}]),
        "accelerator": st.sampled_from(["any", "cpu", "cuda"]),
    },
)


@given(own=capabilities, asked=capabilities)
def test_no_child_is_placed_with_another_capability_than_its_parents(
    own: dict[str, Any], asked: dict[str, Any]
) -> None:
    """Whatever a worker writes: refused, or placed (now, or once amended) with exactly its parent's."""
    of = parent(own)
    made = child(of, asked)
    decision = decided(made, of)
    if decision is None:
        assert made.spec.required_capability == of.spec.required_capability
    elif isinstance(decision, AmendChild):
        assert made.spec.required_capability == RequiredCapability()
        assert RequiredCapability.model_validate(decision.spec["requiredCapability"]) == of.spec.required_capability
    else:
        assert made.spec.required_capability != of.spec.required_capability
