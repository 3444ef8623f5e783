"""Everything `foreman install` applies and `make manifests` writes under manifests/, built from Python data.

CRDs come from the pydantic models (foreman.api.tooling.crd); RBAC, the controller Deployment and the worker DaemonSet
are declared here once. The checked-in YAML is compared with this in the tests, so the two never drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from foreman.api.http.features import CHILD_TASK_RULE, NEEDS_ADMISSION
from foreman.api.models.base import GROUP
from foreman.api.models.schedules import TRIGGER_ANNOTATION
from foreman.api.models.subtasks import (
    AGENT_EXECUTOR,
    CREATED_BY_AGENT,
    CREATED_BY_LABEL,
    CREATOR_NODE_LABEL,
    DEPTH_LABEL,
    PARENT_LABEL,
)
from foreman.api.models.tasks import NODE_LABEL
from foreman.api.models.transcript import KEY as TRANSCRIPT_KEY
from foreman.api.tooling.crd import all_crds
from foreman.api.tooling.services import shipped_files

Manifest = dict[str, Any]

NAMESPACE = "foreman-system"
IMAGE = "ghcr.io/foreman-dev/foreman:0.1.0"
CONTROLLER = "foreman-controller"
WORKER = "foreman-worker"
DASHBOARD = "foreman-dashboard"
NOTIFIER = "foreman-notifier"
NOTIFIER_SECRETS = "foreman-notifier-secrets"
NOTIFIER_HEALTH_PORT = 8082
DASHBOARD_PORT = 8090
CONTROLLER_HEALTH_PORT = 8080
WORKER_HEALTH_PORT = 8081
PART_OF = "app.kubernetes.io/part-of"
"""Every object Foreman's manifests and `foreman node join` make carries this label, `foreman`."""
METRICS = "foreman.dev/metrics"
"""The label of the Services the ServiceMonitor scrapes."""


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, list[str]]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


# Least privilege: the controller decides placement (task status and the node label), runs TaskSchedules (it
# creates their tasks, cancels them under Replace and deletes them past the history limits) and deletes finished tasks
# past their time to live, with the transcript ConfigMap each owns (read first: deleted only when the task owns it);
# the worker only moves its claimed tasks' status and keeps its own FleetNode. Neither can read Secrets.
CONTROLLER_RULES = [
    _rule([GROUP], ["agentictasks"], ["get", "list", "watch", "patch", "create", "delete"]),
    _rule([GROUP], ["agentictasks/status"], ["get", "patch"]),
    _rule([GROUP], ["taskschedules"], ["get", "list", "watch"]),
    _rule([GROUP], ["taskschedules/status"], ["get", "patch"]),
    _rule([GROUP], ["fleetnodes"], ["get", "list", "watch"]),
    _rule([GROUP], ["fleetnodes/status"], ["get", "patch"]),
    _rule([GROUP], ["agents"], ["get", "list", "watch"]),
    _rule([GROUP], ["taskqueues"], ["get", "list", "watch"]),
    _rule([GROUP], ["taskqueues/status"], ["get", "patch"]),
    _rule([""], ["namespaces"], ["get", "list", "watch"]),  # a TaskQueue's namespaceSelector reads their labels
    _rule([""], ["configmaps"], ["get", "delete"]),
    _rule([""], ["events"], ["create", "patch"]),
]
# NB: ConfigMaps hold agent transcripts (`<task>-transcript[-N]`, one per attempt, written once per turn).
# Cluster-wide by default, like the worker's other rules; with transcript namespaces (`foreman install
# --transcript-namespace`, the chart's worker.transcriptNamespaces) only there (worker_transcript_access).
# Create and patch of tasks are for an agent's children only (submit_task, cancel_my_task): the admission policy
# foreman-worker-subtasks holds them to that, and a server without it gets the role without them (for_server).
WORKER_TRANSCRIPT_RULE = _rule([""], ["configmaps"], ["get", "create", "patch"])
WORKER_RULES = [
    _rule([GROUP], ["agentictasks"], ["get", "list", "watch"]),
    CHILD_TASK_RULE,
    _rule([GROUP], ["agentictasks/status"], ["get", "patch"]),
    _rule([GROUP], ["fleetnodes"], ["get", "create", "patch"]),
    _rule([GROUP], ["fleetnodes/status"], ["get", "patch"]),
    _rule([GROUP], ["agents"], ["get"]),
    WORKER_TRANSCRIPT_RULE,
    _rule([""], ["events"], ["create", "patch"]),
]
WORKER_TRANSCRIPTS = f"{WORKER}-transcripts"
# NB: what a task's agent may make through its worker (set_schedule), each write bounded by the admission policy
# `foreman-worker-agent-schedules` (agent_schedules_admission): granted only where that policy is installed
# (features.NEEDS_ADMISSION), in a ClusterRole of its own bound to every worker identity. No delete: a schedule an
# agent made outlives its task, and only people remove it.
AGENT_SCHEDULES = f"{WORKER}-agent-schedules"
AGENT_SCHEDULE_RULES = [_rule([GROUP], ["taskschedules"], ["get", "list", "create", "patch"])]
# NB: the in-cluster dashboard only reads (its pages) and is reached through `kubectl port-forward`; cancel and trigger
# stay with people's own credentials (`foreman dashboard --allow-actions` on their machine).
DASHBOARD_RULES = [
    _rule([GROUP], ["agentictasks", "fleetnodes", "taskschedules", "agents", "taskqueues"], ["get", "list", "watch"]),
    _rule([""], ["configmaps"], ["get", "list", "watch"]),  # agent transcripts, followed live
    _rule([""], ["events"], ["get", "list"]),
    _rule([""], ["namespaces"], ["get", "list", "watch"]),  # the labels TaskQueues select namespaces by
]
# NB: the notifier is the one daemon that reads Secrets, and it reads them by name only (`get`: no list, no watch, so
# it cannot go looking). RBAC cannot grant by label, and no admission check sees a read: that only Secrets labelled
# foreman.dev/notifier: "true" are used is the notifier's own check. What the apiserver does enforce is where: the
# Secrets role is bound per namespace (notifier_secret_access), never cluster-wide, so kube-system's are out of
# reach. ConfigMaps: the transcript, for a sink that asks for it (`include: transcript`).
NOTIFIER_RULES = [
    _rule([GROUP], ["agentictasks"], ["get", "list", "watch"]),
    _rule([GROUP], ["agentictasks/status"], ["get", "patch"]),
    _rule([GROUP], ["agents"], ["get", "list", "watch"]),
    _rule([""], ["configmaps"], ["get"]),
]
NOTIFIER_SECRET_RULES = [_rule([""], ["secrets"], ["get"])]
LEASE_RULES = [_rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"])]


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/name": name, PART_OF: "foreman"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def _subject(name: str, namespace: str = NAMESPACE) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(name),
        "rules": rules,
    }


def _cluster_role_binding(name: str, role: str | None = None, namespace: str = NAMESPACE) -> Manifest:
    """Binds the ClusterRole `role` (default: `name`) to the ServiceAccount `name` of `namespace`."""
    binding: Manifest = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name if role is None else f"{name}-{role.removeprefix(WORKER + '-')}"),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role or name},
        "subjects": [_subject(name, namespace)],
    }
    if role == AGENT_SCHEDULES:
        binding["metadata"]["annotations"] = {NEEDS_ADMISSION: "true"}
    return binding


def _agent_schedules_role() -> Manifest:
    role = _cluster_role(AGENT_SCHEDULES, AGENT_SCHEDULE_RULES)
    role["metadata"]["annotations"] = {NEEDS_ADMISSION: "true"}
    return role


def pinned_worker_rbac(node: str, namespace: str = NAMESPACE) -> list[Manifest]:
    """A worker identity for one host (outside the cluster) that can touch only its own FleetNode; its ServiceAccount
    lives in `namespace`, where Foreman is installed (the admission policy expects it there).

    NB: RBAC cannot restrict `create` by name, so this identity cannot create FleetNodes: its node is created here,
    by whoever applies this, and the worker's registrar patches it. Which tasks' status it may change is the admission
    policy's part (worker_admission, installed with the rest; Kubernetes >= 1.30).
    """
    name = f"{WORKER}-{node}"
    own_node = {**_rule([GROUP], ["fleetnodes", "fleetnodes/status"], ["get", "patch"]), "resourceNames": [node]}
    rules = [*(rule for rule in WORKER_RULES if not rule["resources"][0].startswith("fleetnodes")), own_node]
    fleet_node = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "FleetNode",
        "metadata": {"name": node},
        "spec": {"nodeName": node},
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(name, namespace)},
        _cluster_role(name, rules),
        _cluster_role_binding(name, namespace=namespace),
        _cluster_role_binding(name, AGENT_SCHEDULES, namespace),
        fleet_node,
    ]


def pinned_worker_user(node: str, namespace: str = NAMESPACE) -> str:
    """The user name of the per-node worker identity of `node` (pinned_worker_rbac) in `namespace`."""
    return f"system:serviceaccount:{namespace}:{WORKER}-{node}"


PINNED_WORKER_PREFIX = pinned_worker_user("")
"""The user name of a per-node worker identity in our namespace, less its node's name."""
SHARED_WORKER_USER = f"system:serviceaccount:{NAMESPACE}:{WORKER}"
"""The user name of the DaemonSet's worker identity, one ServiceAccount shared by every Node's pod."""
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
"""Where the apiserver puts the Node of the Pod a ServiceAccount token is bound to (ServiceAccountTokenPodNodeInfo)."""
_BOUND_TO_A_NODE = f"has(request.userInfo.extra) && '{NODE_NAME_EXTRA}' in request.userInfo.extra"
OWN_NODE_POLICY = f"{WORKER}-own-node"
OWN_OBJECTS_POLICY = f"{WORKER}-own-objects"
_IS_PINNED_WORKER = f"request.userInfo.username.startsWith('{PINNED_WORKER_PREFIX}')"
_A_WORKER = {
    "name": "a-worker",
    "expression": f"{_IS_PINNED_WORKER} || request.userInfo.username == '{SHARED_WORKER_USER}'",
}
"""Any worker identity: per-node, or the shared one (whose token may be bound to no Pod, and so to no node)."""
_REQUESTERS_NODE = {
    "name": "node",
    # NB: size() of the prefix, not its length computed here: the chart puts its own namespace in the prefix
    "expression": f"{_IS_PINNED_WORKER} ? request.userInfo.username.substring(size('{PINNED_WORKER_PREFIX}'))"
    f" : {_BOUND_TO_A_NODE} ? request.userInfo.extra['{NODE_NAME_EXTRA}'][0] : ''",
}
"""The node of the worker making the request: a per-node identity's, the Pod's of a bound token, else ''."""
_WORKER_OF_A_NODE: dict[str, Any] = {
    "matchConditions": [
        {
            "name": "worker-of-a-node",
            "expression": f"{_IS_PINNED_WORKER}"
            f" || (request.userInfo.username == '{SHARED_WORKER_USER}' && {_BOUND_TO_A_NODE})",
        }
    ],
    "variables": [_REQUESTERS_NODE],
}
"""Who the worker policies hold, and their node: a per-node identity, or the shared one with a token bound to a Pod."""


def worker_admission() -> list[Manifest]:
    """A per-node worker identity may change the status only of tasks Scheduled or Running on its own node, and never
    move one to another node: so it claims only what was scheduled there and cannot finish or fail another node's
    work; nor change a task's review stage once written (the work's attempts are there: a reviewer, lent no fleet,
    cannot name its node as the work's); and it registers and changes only its own FleetNode (which RBAC's
    resourceNames already ensures for the per-node identities, but not for the shared one, which must create its
    FleetNode). RBAC cannot say this (it
    scopes by verb and name, not by content); a ValidatingAdmissionPolicy (Kubernetes >= 1.30,
    features.VALIDATING_ADMISSION_POLICY) can. The node is read off the user name (the ServiceAccount
    `foreman-worker-NODE`), or, for the shared DaemonSet identity, off its token: a token bound to a Pod carries the
    Pod's Node in `userInfo.extra` (NODE_NAME_EXTRA, on by default from 1.30), and the DaemonSet names each FleetNode
    after its Kubernetes Node. A shared token bound to no Pod (a long-lived Secret, `kubectl create token` without
    `--bound-object-kind Pod`) names no node and is not matched: it keeps the open status (README)."""
    policy = {
        "failurePolicy": "Fail",
        **_WORKER_OF_A_NODE,
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["UPDATE"],
                    "resources": ["agentictasks/status"],
                },
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["fleetnodes", "fleetnodes/status"],
                },
            ]
        },
        "validations": [
            {
                "expression": "request.resource.resource != 'fleetnodes' || object.metadata.name == variables.node",
                "messageExpression": "'a worker may register and change only its own FleetNode (' + variables.node"
                " + ')'",
                "reason": "Forbidden",
            },
            {
                "expression": "request.resource.resource != 'agentictasks' || has(oldObject.status)"
                " && has(oldObject.status.assignedNode) && oldObject.status.assignedNode == variables.node"
                " && has(oldObject.status.phase) && oldObject.status.phase in ['Scheduled', 'Running']",
                "messageExpression": "'a worker may change the status only of tasks Scheduled or Running on its own"
                " node (' + variables.node + ')'",
                "reason": "Forbidden",
            },
            {
                "expression": "request.resource.resource != 'agentictasks' || !has(object.status)"
                " || !has(object.status.assignedNode) || object.status.assignedNode == variables.node",
                "messageExpression": "'a worker may not move a task to another node than its own (' + variables.node"
                " + ')'",
                "reason": "Forbidden",
            },
            {
                # NB: the stage's workAttempts say which nodes made the task's children and schedules
                # (subtasks.ran_on): the reviewer's worker holds the task, and would name its own node there
                "expression": "request.resource.resource != 'agentictasks' || !has(oldObject.status)"
                " || !has(oldObject.status.review) || has(object.status) && has(object.status.review)"
                " && object.status.review == oldObject.status.review",
                "message": "a worker may not change a task's review stage (status.review) once it began",
                "reason": "Forbidden",
            },
        ],
    }
    return [
        *_policy(OWN_NODE_POLICY, policy),
        *_policy(OWN_OBJECTS_POLICY, _own_objects()),
        *_policy(SUBTASKS_POLICY, _subtasks()),
    ]


SUBTASKS_POLICY = f"{WORKER}-subtasks"
CHILD_FIELDS = ["kind", "executor", "payload", "agentRef", "requiredCapability", "dependsOn", "priority", "queue",
                "timeoutSeconds", "retries", "cancel", "notify"]  # fmt: skip
"""The spec fields a child has (api/lifecycle/subtasks.child_task, and the CRD's defaults): its Agent decides the
rest (model, gates, review, pull requests, escalation), so a worker may set none of them."""
CHILD_PAYLOAD_FIELDS = ["prompt", "inputs", "repo", "branch"]


def _subtasks() -> dict[str, Any]:
    """What a worker may create and change of tasks themselves (not their status): only an agent's children, made on
    its own node, and of those only `spec.cancel`. Every worker identity is held, the shared one too: a shared token
    bound to no Pod names no node, so it creates nothing. The parent is named by label and by an ownerReference
    (which Kubernetes resolves in the child's own namespace only); whether that parent exists there and runs on this
    node, and every count and bound of its Agent, admission cannot see: the controller checks them before the child
    is placed (api/lifecycle/subtasks.refusal)."""
    labels = "object.metadata.labels"
    owner = "object.metadata.ownerReferences[0]"
    labelled = (
        f"has({labels}) && {labels}[?'{CREATED_BY_LABEL}'].orValue('') == '{CREATED_BY_AGENT}'"
        f" && {labels}[?'{CREATOR_NODE_LABEL}'].orValue('') == variables.node && variables.node != ''"
        f" && {labels}[?'{DEPTH_LABEL}'].orValue('').matches('^([1-9]|10)$')"
        f" && {labels}[?'{PARENT_LABEL}'].orValue('') != ''"
    )
    owned = (
        "has(object.metadata.ownerReferences) && object.metadata.ownerReferences.size() == 1"
        f" && {owner}.kind == 'AgenticTask' && {owner}.apiVersion.startsWith('{GROUP}/')"
        f" && {owner}.name == {labels}['{PARENT_LABEL}']"
    )
    spec = (
        f"object.spec.executor == '{AGENT_EXECUTOR}' && has(object.spec.agentRef)"
        f" && object.spec.all(k, k in {CHILD_FIELDS})"
        " && (!has(object.spec.notify) || size(object.spec.notify) == 0)"
        f" && (!has(object.spec.payload) || object.spec.payload.all(k, k in {CHILD_PAYLOAD_FIELDS}))"
    )
    old = "oldObject.metadata.labels"
    cancel_only = (
        f"has({old}) && {old}[?'{CREATED_BY_LABEL}'].orValue('') == '{CREATED_BY_AGENT}'"
        f" && {old}[?'{CREATOR_NODE_LABEL}'].orValue('') == variables.node && variables.node != ''"
        f" && {labels} == {old} && object.metadata.ownerReferences == oldObject.metadata.ownerReferences"
        " && object.spec.all(k, k == 'cancel' || k in oldObject.spec && object.spec[k] == oldObject.spec[k])"
        " && oldObject.spec.all(k, k == 'cancel' || k in object.spec)"
    )
    return _worker_writes(
        "agentictasks",
        [
            {
                "expression": f"request.operation != 'CREATE' || ({labelled}) && ({owned}) && ({spec})",
                "messageExpression": "'a worker may create only child tasks of an agent: labelled "
                f"{CREATED_BY_LABEL}={CREATED_BY_AGENT}, {PARENT_LABEL} (its one ownerReference), {DEPTH_LABEL} and "
                f"{CREATOR_NODE_LABEL}=' + variables.node + ', executor agent with an agentRef, no notify, no fields"
                f" but {', '.join(CHILD_FIELDS)} (a payload of {', '.join(CHILD_PAYLOAD_FIELDS)})'",
                "reason": "Forbidden",
            },
            {
                "expression": f"request.operation != 'UPDATE' || ({cancel_only})",
                "messageExpression": "'a worker may change only spec.cancel of the child tasks its own node made ('"
                " + variables.node + ')'",
                "reason": "Forbidden",
            },
        ],
    )


def _worker_writes(resource: str, validations: list[dict[str, str]]) -> dict[str, Any]:
    """A policy on what every worker identity creates or changes of `resource`, with `variables.node` the writer's
    node ('' for a shared token bound to no Pod)."""
    return {
        "failurePolicy": "Fail",
        "matchConditions": [_A_WORKER],
        "variables": [_REQUESTERS_NODE],
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": [resource],
                }
            ]
        },
        "validations": validations,
    }


def _own_objects() -> dict[str, Any]:
    """What a worker of a node writes beside tasks and nodes: only its own tasks' transcript ConfigMaps (named after
    the task that owns them, labelled with its node, one data key) and Events only about tasks and its own FleetNode.
    So it cannot create or change kube-system/aws-auth (EKS maps IAM roles to system:masters there), rewrite another
    node's transcripts (forging what `foreman logs` shows), or write Warning Events about the apiserver's pod."""
    label = f"'{NODE_LABEL}'"
    owner = "object.metadata.ownerReferences[0]"
    name = "object.metadata.name"
    # NB: `<task>-transcript` for a task's first attempt, `<task>-transcript-N` for attempt N (transcript.py)
    named = (
        f"({owner}.name + '-transcript' == {name} || {name}.startsWith({owner}.name + '-transcript-')"
        f" && {name}.substring(size({owner}.name) + 12).matches('^[1-9][0-9]{{0,3}}$'))"
    )
    transcript = (
        f"{name}.contains('-transcript')"
        f" && has(object.metadata.labels) && {label} in object.metadata.labels"
        f" && object.metadata.labels[{label}] == variables.node"
        " && has(object.metadata.ownerReferences) && object.metadata.ownerReferences.size() == 1"
        f" && {owner}.kind == 'AgenticTask' && {owner}.apiVersion.startsWith('{GROUP}/')"
        f" && {named}"
        f" && !has(object.binaryData) && (!has(object.data) || object.data.all(k, k == '{TRANSCRIPT_KEY}'))"
    )
    theirs_before = (
        f"request.operation != 'UPDATE' || has(oldObject.metadata.labels) && {label} in oldObject.metadata.labels"
        f" && oldObject.metadata.labels[{label}] == variables.node"
    )
    about = "object.involvedObject"
    event = (
        f"{about}.apiVersion.startsWith('{GROUP}/') && ({about}.kind == 'AgenticTask'"
        f" || {about}.kind == 'FleetNode' && {about}.name == variables.node)"
    )
    return {
        "failurePolicy": "Fail",
        **_WORKER_OF_A_NODE,
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [""],
                    "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["configmaps", "events"],
                },
            ]
        },
        "validations": [
            {
                "expression": f"request.resource.resource != 'configmaps' || ({transcript}) && ({theirs_before})",
                "messageExpression": "'a worker may write only the transcript ConfigMaps of its own node\\'s tasks ('"
                " + variables.node + ')'",
                "reason": "Forbidden",
            },
            {
                "expression": f"request.resource.resource != 'events' || {event}",
                "messageExpression": "'a worker may record Events only about tasks and its own FleetNode ('"
                " + variables.node + ')'",
                "reason": "Forbidden",
            },
        ],
    }


def agent_schedules_admission() -> list[Manifest]:
    """What a worker's token may write of a TaskSchedule (RBAC: get, list, create, patch; AGENT_SCHEDULE_RULES): only
    an agent-made one (`spec.source: agent`, labelled foreman.dev/created-by=agent and foreman.dev/parent naming
    spec.createdBy.task), made on its own node (spec.createdBy.node), whose tasks are agent tasks for an Agent with a
    prompt and nothing else (no notify sink to send results to, no priority, gates, escalation, repository, model or
    labels); a change keeps its maker, and no worker fires one by hand (the trigger annotation would fire it past
    its interval, as often as it liked). What needs counting or another object (the parent task Scheduled or Running on
    that node with that uid, in this namespace and queue; maxSchedules; the interval; the Agent allowed) the
    controller decides before the schedule fires (api/lifecycle/agent_schedules.py). Every worker identity is held to
    it, the shared one with a token bound to no Pod included: that one names no node, so it makes no schedules."""
    spec = "object.spec"
    template = f"{spec}.taskTemplate"
    task = f"{template}.spec"
    labels = "object.metadata.labels"
    annotations = "object.metadata.annotations"
    allowed_fields = ["kind", "executor", "payload", "agentRef", "queue", "requiredCapability", "priority",
                      "timeoutSeconds", "retries", "cancel", "dependsOn", "notify"]  # fmt: skip
    validations = [
        ("variables.node != ''", "'a worker token that names no node (a shared token bound to no Pod) makes no"
         " TaskSchedules'"),
        (f"has({spec}.source) && {spec}.source == 'agent'", "'a worker may write only agent-made TaskSchedules"
         " (spec.source: agent)'"),
        (f"has({spec}.createdBy) && {spec}.createdBy.node == variables.node", "'an agent-made TaskSchedule names its"
         " maker on the node of the worker that writes it (spec.createdBy.node: ' + variables.node + ')'"),
        (f"has({spec}.createdBy) && has({labels}) && '{CREATED_BY_LABEL}' in {labels}"
         f" && {labels}['{CREATED_BY_LABEL}'] == '{CREATED_BY_AGENT}' && '{PARENT_LABEL}' in {labels}"
         f" && {labels}['{PARENT_LABEL}'] == {spec}.createdBy.task",
         f"'an agent-made TaskSchedule is labelled {CREATED_BY_LABEL}={CREATED_BY_AGENT} and {PARENT_LABEL}= the task"
         " in spec.createdBy'"),
        (f"{task}.executor == '{AGENT_EXECUTOR}' && has({task}.agentRef) && {task}.all(k, k in {allowed_fields})"
         f" && (!has({task}.priority) || {task}.priority == 0)"
         f" && {_empty(task, 'dependsOn')} && {_empty(task, 'notify')}"
         f" && has({task}.payload) && {task}.payload.all(k, k in ['prompt', 'inputs'])"
         f" && {_empty(task + '.payload', 'inputs')}"
         f" && (!has({template}.metadata) || {_empty(template + '.metadata', 'labels')}"
         f" && {_empty(template + '.metadata', 'annotations')})",
         "'the tasks of an agent-made TaskSchedule are agent tasks: executor agent, an agentRef, a payload of a prompt"
         f" only, priority 0, no labels or annotations, no fields but {', '.join(allowed_fields)} (those empty)'"),
        (f"!has({annotations}) || !('{TRIGGER_ANNOTATION}' in {annotations})"
         " || request.operation == 'UPDATE' && has(oldObject.metadata.annotations)"
         f" && '{TRIGGER_ANNOTATION}' in oldObject.metadata.annotations"
         f" && oldObject.metadata.annotations['{TRIGGER_ANNOTATION}'] == {annotations}['{TRIGGER_ANNOTATION}']",
         f"'a worker may not fire a TaskSchedule by hand (annotation {TRIGGER_ANNOTATION}): that is for people'"),
        ("request.operation != 'UPDATE' || has(oldObject.spec.source) && oldObject.spec.source == 'agent'"
         f" && has(oldObject.spec.createdBy) && oldObject.spec.createdBy == {spec}.createdBy",
         "'a worker changes only an agent-made TaskSchedule, and never its maker (spec.createdBy)'"),
    ]  # fmt: skip
    policy = _worker_writes(
        "taskschedules",
        [
            {"expression": expression, "messageExpression": message, "reason": "Forbidden"}
            for expression, message in validations
        ],
    )
    return _policy(AGENT_SCHEDULES, policy)


def _empty(parent: str, field: str) -> str:
    """CEL: the field is absent or empty (the wire form of a model writes an empty list or map for its defaults)."""
    return f"(!has({parent}.{field}) || size({parent}.{field}) == 0)"


NOTIFIER_USER = f"system:serviceaccount:{NAMESPACE}:{NOTIFIER}"
DELIVERIES_ONLY_POLICY = f"{NOTIFIER}-deliveries-only"


def notifier_admission() -> list[Manifest]:
    """The notifier changes a task's status only in `status.deliveries`: RBAC grants it the whole status subresource
    (it scopes by verb, not by field), this policy the one field, so a notifier's token cannot finish, fail or rewrite
    the result of anyone's task. NB: every other status field, present or absent, must stay as it was, whatever
    fields later releases add."""
    unchanged = (
        "has(oldObject.status) && has(object.status)"
        " && object.status.all(k, k == 'deliveries'"
        " || (k in oldObject.status && object.status[k] == oldObject.status[k]))"
        " && oldObject.status.all(k, k == 'deliveries' || k in object.status)"
    )
    policy = {
        "failurePolicy": "Fail",
        "matchConditions": [{"name": "the-notifier", "expression": f"request.userInfo.username == '{NOTIFIER_USER}'"}],
        "matchConstraints": {
            "resourceRules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": ["*"],
                    "operations": ["UPDATE"],
                    "resources": ["agentictasks/status"],
                }
            ]
        },
        "validations": [
            {
                "expression": unchanged,
                "message": "the notifier may change only status.deliveries of a task",
                "reason": "Forbidden",
            }
        ],
    }
    return _policy(DELIVERIES_ONLY_POLICY, policy)


def admission() -> list[Manifest]:
    """Every ValidatingAdmissionPolicy and its binding: what `foreman install`, manifests/ and the chart apply."""
    return [*worker_admission(), *notifier_admission(), *agent_schedules_admission()]


def _policy(name: str, spec: dict[str, Any]) -> list[Manifest]:
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": spec,
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"]},
        },
    ]


def _leader_election(name: str) -> list[Manifest]:
    """The Lease rights of the ServiceAccount `name`, in our namespace only."""
    role = f"{name}-leader-election"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(role, NAMESPACE),
            "rules": LEASE_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(role, NAMESPACE),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [_subject(name)],
        },
    ]


def worker_cluster_role(*, narrowed: bool) -> Manifest:
    """The shared worker's ClusterRole: without the transcript rule when it is `narrowed` to namespaces."""
    return _cluster_role(WORKER, [rule for rule in WORKER_RULES if not (narrowed and rule is WORKER_TRANSCRIPT_RULE)])


def worker_transcript_access(namespace: str) -> list[Manifest]:
    """Lets the shared worker write transcripts in `namespace` only: the transcript rule as a Role there, bound to it
    (one per namespace whose tasks it runs; in the others an agent task runs and its transcript is not written)."""
    meta = _meta(WORKER_TRANSCRIPTS, namespace)
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [WORKER_TRANSCRIPT_RULE]},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKER_TRANSCRIPTS},
            "subjects": [_subject(WORKER)],
        },
    ]  # fmt: skip


def rbac(*, transcript_namespaces: tuple[str, ...] = ()) -> list[Manifest]:
    """The namespace, the daemons' ServiceAccounts and their roles; the worker's transcript rights cluster-wide, or
    in each of `transcript_namespaces` only."""
    names = (CONTROLLER, WORKER, NOTIFIER)
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(NAMESPACE)},
        *({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(n, NAMESPACE)} for n in names),
        _cluster_role(CONTROLLER, CONTROLLER_RULES),
        worker_cluster_role(narrowed=bool(transcript_namespaces)),
        _cluster_role(NOTIFIER, NOTIFIER_RULES),
        *(_cluster_role_binding(n) for n in names),
        _agent_schedules_role(),
        _cluster_role_binding(WORKER, AGENT_SCHEDULES),
        _cluster_role(NOTIFIER_SECRETS, NOTIFIER_SECRET_RULES),  # NB: bound per namespace (notifier_secret_access)
        *_leader_election(CONTROLLER),
        *_leader_election(NOTIFIER),
        *(access for namespace in transcript_namespaces for access in worker_transcript_access(namespace)),
    ]


def notifier_secret_access(namespace: str) -> Manifest:
    """Lets the notifier `get` Secrets in `namespace` (one per namespace whose tasks notify through a Secret):
    `kubectl create rolebinding foreman-notifier-secrets -n NS --clusterrole foreman-notifier-secrets
    --serviceaccount foreman-system:foreman-notifier` makes the same."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(NOTIFIER_SECRETS, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NOTIFIER_SECRETS},
        "subjects": [_subject(NOTIFIER)],
    }


def _probe(path: str, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "periodSeconds": 10, "failureThreshold": 3}


def _container(name: str, args: list[str], port: int, probes: dict[str, Any], image: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "args": args,
        "ports": [{"name": "http", "containerPort": port}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
        **probes,
    }


def _pods(name: str, container: dict[str, Any], **pod: Any) -> dict[str, Any]:
    """The selector and pod template of our workload `name`: `container`, run as the ServiceAccount of the same name,
    never as root; `pod`: further pod spec fields."""
    labels = {"app.kubernetes.io/name": name}
    return {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
            "spec": {
                "serviceAccountName": name,
                "securityContext": {"runAsNonRoot": True},
                **pod,
                "containers": [container],
            },
        },
    }


def _deployment(name: str, replicas: int, container: dict[str, Any]) -> Manifest:
    """A Deployment of `container` in our namespace (`_pods`)."""
    spec = {"replicas": replicas, **_pods(name, container)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, NAMESPACE), "spec": spec}


TTL_AFTER_SUCCESS = 24 * 3600
TTL_AFTER_FAILURE = 7 * 24 * 3600
"""What the shipped controller keeps finished tasks for (README, "Clean-up of finished tasks"): a day for a success,
whose result has been read by then; a week for a failure, which someone may look at after a weekend."""


def _leading_deployment(name: str, args: list[str], port: int, image: str) -> Manifest:
    """A daemon that works while it holds its Lease: two replicas, one leads, the other takes over within a lease
    period (the controller, the notifier)."""
    probes = {
        "livenessProbe": _probe("/healthz", port),
        "readinessProbe": _probe("/readyz", port),
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    command = [*args, "--health-port", str(port), "--lease-namespace", NAMESPACE]
    return _deployment(name, 2, _container(args[0], command, port, probes, image))


def controller_deployment(image: str = IMAGE) -> Manifest:
    ttl = ["--ttl-after-success", str(TTL_AFTER_SUCCESS), "--ttl-after-failure", str(TTL_AFTER_FAILURE)]
    return _leading_deployment(CONTROLLER, ["controller", *ttl], CONTROLLER_HEALTH_PORT, image)


def notifier_deployment(image: str = IMAGE) -> Manifest:
    return _leading_deployment(NOTIFIER, ["notifier"], NOTIFIER_HEALTH_PORT, image)


def worker_daemonset(image: str = IMAGE) -> Manifest:
    args = ["worker", "--node-name", "$(NODE_NAME)", "--health-port", str(WORKER_HEALTH_PORT)]
    probes = {
        "livenessProbe": _probe("/healthz", WORKER_HEALTH_PORT),
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    }
    # NB: the root filesystem is read-only: the agent's workspaces (and Python's tempfile) need a /tmp of their own
    scratch = {"volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}]}
    container = _container("worker", args, WORKER_HEALTH_PORT, {**probes, **scratch}, image)
    # NB: drain (finish or hand back running tasks) needs the grace period plus a margin
    spec = _pods(WORKER, container, terminationGracePeriodSeconds=45, volumes=[{"name": "tmp", "emptyDir": {}}])
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": _meta(WORKER, NAMESPACE), "spec": spec}


def dashboard(image: str = IMAGE) -> list[Manifest]:
    """`foreman dashboard -A` in the cluster, read-only, for `kubectl -n foreman-system port-forward
    deploy/foreman-dashboard 8090` (the dashboard answers to localhost; a probe reads /healthz)."""
    args = ["dashboard", "--address", "0.0.0.0", "--port", str(DASHBOARD_PORT), "--all-namespaces"]
    probes = {"readinessProbe": _probe("/healthz", DASHBOARD_PORT), "livenessProbe": _probe("/healthz", DASHBOARD_PORT)}
    deployment = _deployment(DASHBOARD, 1, _container("dashboard", args, DASHBOARD_PORT, probes, image))
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(DASHBOARD, NAMESPACE)},
        _cluster_role(DASHBOARD, DASHBOARD_RULES),
        _cluster_role_binding(DASHBOARD),
        deployment,
    ]


def metrics_services() -> list[Manifest]:
    """A Service in front of each daemon's /metrics (its health port, named `http`; every replica serves the gauges,
    a standby too), and the prometheus-operator ServiceMonitor that scrapes them: optional, as the PrometheusRule is
    (a cluster without the operator has no such kind)."""
    ports = {CONTROLLER: CONTROLLER_HEALTH_PORT, WORKER: WORKER_HEALTH_PORT, NOTIFIER: NOTIFIER_HEALTH_PORT}
    services: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {**_meta(f"{name}-metrics", NAMESPACE), "labels": {PART_OF: "foreman", METRICS: "true"}},
            "spec": {
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "http", "port": port, "targetPort": "http"}],
            },
        }
        for name, port in ports.items()
    ]
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta("foreman", NAMESPACE),
        "spec": {
            "selector": {"matchLabels": {METRICS: "true"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    }
    return [*services, monitor]


def files() -> dict[str, list[Manifest]]:
    """Relative path under manifests/ → the documents in it."""
    crds = {f"crds/{crd['metadata']['name']}.yaml": [crd] for crd in all_crds()}
    return {
        **crds,
        "rbac.yaml": rbac(),
        "admission.yaml": admission(),
        "controller.yaml": [controller_deployment()],
        "worker.yaml": [worker_daemonset()],
        # NB: the RoleBinding for `default` is the example; one per namespace whose tasks notify through a Secret
        "notifier.yaml": [notifier_deployment(), notifier_secret_access("default")],
        "dashboard.yaml": dashboard(),  # NB: optional, so not in the kustomization: kubectl apply -f it
        "monitoring/servicemonitor.yaml": metrics_services(),  # NB: needs prometheus-operator, as the rule does
        "kustomization.yaml": [
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [*crds, "rbac.yaml", "admission.yaml", "controller.yaml", "worker.yaml", "notifier.yaml"],
            }
        ],
    }


def install_manifests(
    *,
    with_workloads: bool = False,
    with_dashboard: bool = False,
    image: str = IMAGE,
    notify_namespaces: tuple[str, ...] = (),
    transcript_namespaces: tuple[str, ...] = (),
) -> list[Manifest]:
    """What `foreman install` applies, in dependency order (the Deployments and DaemonSet, and the read-only
    dashboard, only on request, running `image`; the notifier's Secret access in each of `notify_namespaces`; the
    worker's transcript rights only in `transcript_namespaces` when any are named)."""
    access = [notifier_secret_access(namespace) for namespace in notify_namespaces]
    docs = [
        *all_crds(),
        *rbac(transcript_namespaces=transcript_namespaces),
        *access,
        *admission(),
    ]
    workloads = (
        [controller_deployment(image), worker_daemonset(image), notifier_deployment(image)] if with_workloads else []
    )
    return [*docs, *workloads, *(dashboard(image) if with_dashboard else [])]


def render(documents: list[Manifest]) -> str:
    header = "# Generated by `make manifests` from foreman.api (do not edit by hand).\n"
    # NB: libyaml's dumper where PyYAML has it: the same text, a third of the time (the CRDs are large)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return header + "---\n".join(yaml.dump(doc, Dumper=dumper, sort_keys=False, width=120) for doc in documents)


def write_texts(directory: Path, texts: dict[str, str]) -> list[Path]:
    """Each text to its path under `directory` (folders made as needed); the paths written."""
    written = []
    for relative, text in texts.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def write(directory: Path) -> list[Path]:
    texts = {relative: render(documents) for relative, documents in files().items()}
    return write_texts(directory, {**texts, **shipped_files()})


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "manifests")):
        sys.stderr.write(f"wrote {path}\n")
