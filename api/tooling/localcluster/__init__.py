"""A real, local Kubernetes control plane (etcd + kube-apiserver) for development, the demo and the tests."""

from foreman.api.tooling.localcluster.cluster import Identity, LocalCluster, PrerequisiteMissing, ensure_apiserver

__all__ = ["Identity", "LocalCluster", "PrerequisiteMissing", "ensure_apiserver"]
