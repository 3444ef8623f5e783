"""A real, local Kubernetes control plane (etcd + kube-apiserver) for development, the demo and the tests."""

from foreman.api.tooling.localcluster.cluster import Identity, LocalCluster, ensure_apiserver
from foreman.api.tooling.prerequisites import PrerequisiteMissing

__all__ = ["Identity", "LocalCluster", "PrerequisiteMissing", "ensure_apiserver"]
