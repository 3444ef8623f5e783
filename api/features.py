"""What each Kubernetes release offers that Foreman uses, and how the manifests adapt to an older server (pure).

`foreman install` asks the server for its release (GET /version) and applies `for_server(manifests, release)`; the
checked-in manifests/ are for current servers. README, "Kubernetes releases", lists the features and releases.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

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
per-node worker to its own node's tasks (manifests.worker_admission): there every worker may still write the status of
any task (README, "Reliability and security")."""
ADMISSION_KINDS = frozenset({"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"})


def release_of(version: dict[str, Any]) -> Release:
    """The release in a GET /version answer; managed clusters say minor "30+", so the digits are read from gitVersion
    first (v1.37.2, v1.30.4-eks-...)."""
    found = re.match(r"v?(\d+)\.(\d+)", str(version.get("gitVersion", "")))
    if found:
        return Release(int(found[1]), int(found[2]))
    return Release(int(re.sub(r"\D", "", str(version["major"]))), int(re.sub(r"\D", "", str(version["minor"]))))


def for_server(manifests: list[Manifest], release: Release) -> list[Manifest]:
    """The manifests as a server of `release` takes them (unchanged for a current one)."""
    if release >= VALIDATING_ADMISSION_POLICY:
        return manifests
    manifests = [m for m in manifests if m["kind"] not in ADMISSION_KINDS]
    if release >= CEL_VALIDATION:
        return manifests
    return [_without_validations(m) if m["kind"] == "CustomResourceDefinition" else m for m in manifests]


def _without_validations(crd: Manifest) -> Manifest:
    crd = copy.deepcopy(crd)
    for version in crd["spec"]["versions"]:
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
