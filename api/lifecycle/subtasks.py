"""Children of a task (an agent's `submit_task`): how one is made, and the limits on it, as pure functions.

Two callers read the same limits. The worker's tools refuse a submission that cannot pass (`submission_refusal`), so
the model hears why at once and nothing is written; the controller refuses a child that got through anyway
(`refusal`), because a worker's token is the thing the limits hold: admission (manifests.worker_admission) sees only
the object, so what needs the parent, its Agent or a count is the controller's to check, before the child is placed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from foreman.api.lifecycle import reasons
from foreman.api.models.base import API_VERSION
from foreman.api.models.envelope import ChildRecord
from foreman.api.models.subtasks import (
    AGENT_EXECUTOR,
    CREATED_BY_AGENT,
    CREATED_BY_LABEL,
    CREATOR_NODE_LABEL,
    DEPTH_LABEL,
    MAX_PAYLOAD_BYTES,
    MAX_PROMPT,
    PARENT_LABEL,
    SubtaskPolicy,
)
from foreman.api.models.tasks import TERMINAL_PHASES, AgenticTask, RequiredCapability

LABEL_VALUE = 63
"""A label value's longest: the parent's name must fit in foreman.dev/parent."""


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


def is_child(task: AgenticTask) -> bool:
    """Made by an agent (labelled so; the admission policy makes every task a worker creates carry it)."""
    return task.metadata.labels.get(CREATED_BY_LABEL) == CREATED_BY_AGENT


def depth_of(task: AgenticTask) -> int | None:
    """Levels below the task people made: 0 for that one; None for a child whose depth label is not a number."""
    if not is_child(task):
        return 0
    label = task.metadata.labels.get(DEPTH_LABEL, "")
    return int(label) if label.isdigit() and len(label) <= 2 else None


def owned_by(child: AgenticTask, parent: AgenticTask) -> bool:
    """The child names this parent, by label and by an ownerReference with its uid (a name alone can be reused)."""
    if child.metadata.labels.get(PARENT_LABEL) != parent.name or not parent.metadata.uid:
        return False
    return any(
        ref.kind == "AgenticTask" and ref.name == parent.name and ref.uid == parent.metadata.uid
        for ref in child.metadata.owner_references
    )


def children_of(parent: AgenticTask, tasks: Iterable[AgenticTask]) -> list[AgenticTask]:
    """The parent's children, oldest first (creation time, then name)."""
    found = [task for task in tasks if is_child(task) and owned_by(task, parent)]
    return sorted(found, key=lambda t: (t.metadata.creation_timestamp or datetime.min.replace(tzinfo=UTC), t.name))


def child_name(parent: str, index: int) -> str:
    """The parent's `index`-th child's name: short enough to be a parent label itself."""
    base = parent[: LABEL_VALUE - 6].rstrip("-.")
    return f"{base}-{index}"


def child_task(
    parent: AgenticTask,
    *,
    name: str,
    agent: str,
    prompt: str,
    inputs: Mapping[str, Any],
    depends_on: Sequence[str],
    node: str,
) -> AgenticTask:
    """The child as the worker creates it: the parent's namespace, queue, priority, repository and what it needs of
    a node (a parent that must run confined has children that must too), an ownerReference to it, the labels
    admission asks for; the rest is the child Agent's (its model, tools, gates)."""
    depth = depth_of(parent) or 0
    labels = {PARENT_LABEL: parent.name, CREATED_BY_LABEL: CREATED_BY_AGENT, DEPTH_LABEL: str(depth + 1),
              CREATOR_NODE_LABEL: node}  # fmt: skip
    owner = {"apiVersion": API_VERSION, "kind": "AgenticTask", "name": parent.name, "uid": parent.metadata.uid}
    spec: dict[str, Any] = {
        "kind": parent.spec.kind,
        "executor": AGENT_EXECUTOR,
        "agentRef": agent,
        "payload": {"prompt": prompt, "inputs": dict(inputs)},
        "dependsOn": list(depends_on),
        "priority": parent.spec.priority,
        "timeoutSeconds": parent.spec.timeout_seconds,
        "requiredCapability": parent.spec.required_capability.to_wire(),
    }
    if parent.spec.queue:
        spec["queue"] = parent.spec.queue
    if parent.spec.payload.repo:
        spec["payload"] |= {"repo": parent.spec.payload.repo, "branch": parent.spec.payload.branch}
    metadata = {"name": name, "namespace": parent.namespace, "labels": labels, "ownerReferences": [owner]}
    return AgenticTask.model_validate({"metadata": metadata, "spec": spec})


def submission_refusal(
    parent: AgenticTask,
    policy: SubtaskPolicy | None,
    children: Sequence[str],
    *,
    agent: object,
    prompt: object,
    inputs: object,
    depends_on: object,
) -> str | None:
    """Why `submit_task` with these arguments (as the model sent them) cannot make a child of `parent`, whose
    children so far are `children`; None: it may. What the controller would refuse is refused here first."""
    if policy is None or not policy.agents:
        return "this task may not create tasks (its Agent has no spec.subtasks.agents)"
    if not isinstance(agent, str) or agent not in policy.agents:
        return f"agent must be one of {', '.join(policy.agents)}; got {agent!r}"
    if not isinstance(prompt, str) or not prompt.strip():
        return "prompt must be a non-empty string"
    if len(prompt) > MAX_PROMPT:
        return f"prompt has {len(prompt)} characters; at most {MAX_PROMPT}"
    if not isinstance(inputs, dict):
        return "payload must be an object (the child's payload.inputs)"
    if (size := len(json.dumps([prompt, inputs], ensure_ascii=False).encode())) > MAX_PAYLOAD_BYTES:
        return f"prompt and payload take {size} bytes as JSON; at most {MAX_PAYLOAD_BYTES} (pass files by repository)"
    if not isinstance(depends_on, list) or not all(isinstance(name, str) for name in depends_on):
        return "dependsOn must be a list of task names"
    if strangers := [name for name in depends_on if name not in children]:
        # NB: a child may wait only for children made before it, so no cycle can form among them
        mine = ", ".join(children) or "none yet"
        return f"dependsOn may name only this task's children created before (yours: {mine}); not {strangers}"
    if len(children) >= policy.max_children:
        return f"this task has created {len(children)} tasks, its limit (maxChildren {policy.max_children})"
    depth = (depth_of(parent) or 0) + 1
    if depth > policy.max_depth:
        return f"a child here would be {depth} levels below the task people made; maxDepth is {policy.max_depth}"
    if len(parent.name) > LABEL_VALUE:
        return f"a task whose name is longer than {LABEL_VALUE} characters cannot have children (label value)"
    return None


def refusal(
    child: AgenticTask,
    parent: AgenticTask | None,
    policy: SubtaskPolicy | None,
    labelled: Iterable[AgenticTask],
) -> Refusal | None:
    """Why the controller must not run an agent-made child (its parent's Agent's `policy`; `labelled`: the tasks
    labelled with the parent's name, the child among them); None: it may. Looked at while the child is Pending, so a
    parent that was running when the child was made, and ended since, still lets it run; a parent cancelled or gone
    does not (it takes its children)."""
    named = child.metadata.labels.get(PARENT_LABEL, "")
    if parent is None or not owned_by(child, parent):
        return Refusal(reasons.PARENT_NOT_RUNNING, f"parent task {named!r} does not exist here (by name and uid)")
    if parent.spec.cancel or parent.status.failure_reason == reasons.CANCELLED:
        return Refusal(reasons.CANCELLED, f"parent task {parent.name} was cancelled")
    node = child.metadata.labels.get(CREATOR_NODE_LABEL)
    if not ran_on(parent, node, child.metadata.creation_timestamp):
        return Refusal(
            reasons.PARENT_NOT_RUNNING,
            f"parent task {parent.name} was not Scheduled or Running on {node} (the creating node) when this was made",
        )
    if policy is None or child.spec.agent_ref not in policy.agents:
        allowed = ", ".join(policy.agents) if policy is not None and policy.agents else "none"
        return Refusal(reasons.SUBTASK_NOT_ALLOWED, f"Agent {child.spec.agent_ref!r} is not among the parent's "
                       f"subtasks.agents ({allowed})")  # fmt: skip
    if beyond := _beyond_a_child(child, parent):
        return Refusal(reasons.SUBTASK_NOT_ALLOWED, f"a child's spec is what submit_task makes of its parent (its "
                       f"queue and requiredCapability, executor agent, no notify), not its own spec."
                       f"{', spec.'.join(beyond)}: its Agent and its parent decide those")  # fmt: skip
    if child.spec.priority > parent.spec.priority:
        return Refusal(reasons.SUBTASK_NOT_ALLOWED, "a child runs at most at its parent's priority")
    if child.spec.timeout_seconds > parent.spec.timeout_seconds or child.spec.retries > parent.spec.retries:
        return Refusal(reasons.SUBTASK_NOT_ALLOWED, "a child gets at most its parent's timeoutSeconds and retries")
    depth, expected = depth_of(child), (depth_of(parent) or 0) + 1
    if depth != expected:
        return Refusal(
            reasons.SUBTASK_LIMIT_EXCEEDED, f"depth label says {depth}, the parent's depth + 1 is {expected}"
        )
    if depth > policy.max_depth:
        return Refusal(reasons.SUBTASK_LIMIT_EXCEEDED, f"{depth} levels below the task people made; the parent's "
                       f"Agent allows maxDepth {policy.max_depth}")  # fmt: skip
    older = [task.name for task in children_of(parent, labelled)]
    # NB: any sibling, not only those made before it: creation times have whole seconds, so a turn's children tie
    if strangers := [name for name in child.spec.depends_on if name not in older or name == child.name]:
        return Refusal(reasons.SUBTASK_NOT_ALLOWED, f"a child depends only on its parent's other children; not on "
                       f"{', '.join(strangers)}")  # fmt: skip
    rank = older.index(child.name) if child.name in older else len(older)
    if rank >= policy.max_children:
        return Refusal(reasons.SUBTASK_LIMIT_EXCEEDED, f"child {rank + 1} of {parent.name}; its Agent allows "
                       f"maxChildren {policy.max_children}")  # fmt: skip
    return None


def inheriting(child: AgenticTask, parent: AgenticTask | None) -> AgenticTask | None:
    """The child with its parent's requiredCapability, where the child has the default one and its parent another:
    what a version before children inherited it wrote (submit_task's child then asked nothing of a node). It takes
    its parent's, never runs with less; the default asks the least, so the parent's is as strict or stricter. None:
    the child is judged as it is (one asking anything else of a node than its parent is refused, `refusal`).
    NB: a worker that writes the default today gets its parent's too, so this lets no child run with less than its
    parent asks."""
    default = RequiredCapability()
    if parent is None or child.spec.required_capability != default or parent.spec.required_capability == default:
        return None
    spec = child.spec.model_copy(update={"required_capability": parent.spec.required_capability})
    return child.model_copy(update={"spec": spec})


VARIES = frozenset({"priority", "timeout_seconds", "retries", "cancel", "depends_on", "payload"})
"""A child's spec fields that may differ from what `child_task` makes: within the bounds `refusal` checks, or (its
payload) not the controller's to read: its cache keeps no payloads; admission holds a payload's fields, the worker
that runs the child the repository."""


def _beyond_a_child(child: AgenticTask, parent: AgenticTask) -> list[str]:
    """The wire names of the child's spec fields that are not what `child_task` makes of its parent for the same
    submission: a model, gates, a review, a pull-request policy, an escalation ladder, a node's capability, a time to
    live. Its Agent (and the parent) decide those, so a child that sets them would run beyond what the parent's
    Agent allowed."""
    spec = child.spec
    # NB: no dependsOn of the child's: a stored task is not held to the cross-field rules (a server without CEL
    # stores a task that names itself), and one made from its fields would be
    made = child_task(parent, name=child.name, agent=spec.agent_ref or "", prompt="", inputs={}, depends_on=[],
                      node="").spec  # fmt: skip
    fields = type(spec).model_fields
    return [fields[name].alias or name for name in fields if name not in VARIES and getattr(spec, name) !=
            getattr(made, name)]  # fmt: skip


def ran_on(parent: AgenticTask, node: str | None, created: datetime | None) -> bool:
    """The parent's work was Scheduled or Running on `node` when `created` (a child, an agent-made schedule: the
    apiserver's creationTimestamp, which no worker writes): it may have ended since, or be in its review step; its
    attempts say where and when it ran. Once in review, only the work's attempts count (`status.review.workAttempts`),
    never the node that holds the task or ended it: that is the reviewer's, which is lent no fleet.
    Threat model: a hostile worker runs a task's review, so it holds the task and may rewrite its status, but not its
    review stage (admission: manifests.worker_admission), where the work's attempts are: only those are read here."""
    if not node:
        return False
    stage = parent.status.review
    if stage is None and parent.held_node == node:
        return True
    if created is None:
        return False
    early = created + timedelta(seconds=1)  # NB: creationTimestamp has whole seconds
    late = created - timedelta(seconds=1)
    for attempt in parent.status.attempt_history if stage is None else stage.work_attempts:
        began, ended = attempt.started_at, attempt.finished_at
        if attempt.node == node and began is not None and began <= early and (ended is None or late <= ended):
            return True
    # NB: a finished task's cached attempts keep no times (controller/trim.py): its end, on the node it ran on
    finished = parent.status.finished_at
    return (
        stage is None
        and parent.phase in TERMINAL_PHASES
        and parent.status.assigned_node == node
        and finished is not None
        and late <= finished
    )


def records(names: Sequence[str], tasks: Mapping[str, AgenticTask | None]) -> list[ChildRecord]:
    """The children as the parent's envelope lists them (one gone since: its name only)."""
    found = []
    for name in names:
        task = tasks.get(name)
        found.append(ChildRecord(name=name, phase=task.phase if task else None, verdict=task.status.verdict if task
                                 else None))  # fmt: skip
    return found
