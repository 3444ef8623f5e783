"""What each Kubernetes release offers that Foreman uses, and how the manifests adapt to an older server (pure).

`foreman install` asks the server for its release (GET /version) and applies `for_server(manifests, release)`; the
checked-in manifests/ are for current servers. README, "Kubernetes releases", lists the features and releases.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from foreman.api.models.base import GROUP
from foreman.api.models.tasks import NODE_LABEL

Manifest = dict[str, Any]


@dataclass(frozen=True, order=True)
class Release:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


CEL_VALIDATION = Release(1, 25)
"""CRD `x-kubernetes-validations` (CEL) on by default (beta; GA in 1.29). Older servers refuse the field in a CRD
applied server-side ("field not declared in schema"), so they get the CRDs without it: the models still check the same
rules on every input that goes through Foreman (CLI, SDK), the apiserver then checks types and bounds only."""


VALIDATING_ADMISSION_POLICY = Release(1, 30)
"""admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy (GA). Older servers do not get the policy that keeps a
worker of a known node (a per-node identity, or a DaemonSet pod's token, which names its Node from 1.30 on) to its own
node's tasks and FleetNode (manifests.worker_admission): there every worker may still write the status of any task
(README, "Reliability and security")."""
SELECTABLE_FIELDS = Release(1, 31)
"""CRD `selectableFields` (field selectors on custom resources: beta and on by default in 1.31, GA in 1.32). There a
worker selects its tasks by `status.assignedNode` and `status.phase`, and the controller no longer writes the node
label (3 writes per task instead of 4); older servers refuse the field in the CRD, so they get it without, and the
label path as before."""
ADMISSION_KINDS = frozenset({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})
CHILD_TASK_RULE: Manifest = {"apiGroups": [GROUP], "resources": ["agentictasks"], "verbs": ["create", "patch"]}
"""The worker's right to create and patch tasks, for an agent's children: only admission narrows it to them
(manifests.worker_admission), so a server without ValidatingAdmissionPolicy gets roles without it (no sub-tasks)."""
NEEDS_ADMISSION = "foreman.dev/needs-admission-policy"
"""Annotation on RBAC that grants only what a ValidatingAdmissionPolicy bounds (a worker's right to make
TaskSchedules): older servers, without the policy, get neither."""


def release_of(version: dict[str, Any]) -> Release:
    """The release in a GET /version answer; managed clusters say minor "30+", so the digits are read from gitVersion
    first (v1.37.2, v1.30.4-eks-...)."""
    found = re.match(r"v?(\d+)\.(\d+)", str(version.get("gitVersion", "")))
    if found:
        return Release(int(found[1]), int(found[2]))
    return Release(int(re.sub(r"\D", "", str(version["major"]))), int(re.sub(r"\D", "", str(version["minor"]))))


@dataclass(frozen=True)
class Selection:
    """How a worker selects the tasks Scheduled or Running on its node: one of the two selectors is set."""

    label_selector: str | None = None
    field_selector: str | None = None


def tasks_on_node(node: str, release: Release) -> Selection:
    """By field where the server has selectableFields (the status is the truth, no label to wait for), else by the
    node label the controller keeps in step with the status."""
    if release >= SELECTABLE_FIELDS:
        return Selection(field_selector=f"status.assignedNode={node},status.phase!=Succeeded,status.phase!=Failed")
    return Selection(label_selector=f"{NODE_LABEL}={node}")


def writes_node_label(release: Release) -> bool:
    """Whether the controller must keep the node label: only for workers on servers without selectableFields."""
    return release < SELECTABLE_FIELDS


def for_server(manifests: list[Manifest], release: Release) -> list[Manifest]:
    """The manifests as a server of `release` takes them (the same list for a current one)."""
    if release >= SELECTABLE_FIELDS:
        return manifests
    manifests = [_older_crd(m, release) if m["kind"] == "CustomResourceDefinition" else m for m in manifests]
    if release < VALIDATING_ADMISSION_POLICY:
        manifests = [_unguarded(m) for m in manifests if m["kind"] not in ADMISSION_KINDS and not _needs_admission(m)]
    return manifests


def _unguarded(manifest: Manifest) -> Manifest:
    """A role without the rights only admission keeps in bounds (CHILD_TASK_RULE)."""
    if manifest["kind"] not in ("ClusterRole", "Role") or CHILD_TASK_RULE not in manifest.get("rules", []):
        return manifest
    return {**manifest, "rules": [rule for rule in manifest["rules"] if rule != CHILD_TASK_RULE]}


def _needs_admission(manifest: Manifest) -> bool:
    return NEEDS_ADMISSION in manifest.get("metadata", {}).get("annotations", {})


def _older_crd(crd: Manifest, release: Release) -> Manifest:
    crd = copy.deepcopy(crd)
    for version in crd["spec"]["versions"]:
        version.pop("selectableFields", None)
        if release < CEL_VALIDATION:
            _strip(version["schema"]["openAPIV3Schema"])
    return crd


def _strip(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("x-kubernetes-validations", None)
        for value in node.values():
            _strip(value)
    elif isinstance(node, list):
        for value in node:
            _strip(value)
