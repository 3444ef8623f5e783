"""The HTTP layer: requests prepared (pure), sent by `client.Kube` through a `transport.Transport` (the real one over
kubernetes-asyncio's ApiClient, which `k8sclient` alone loads), answers as exception classes, and what each Kubernetes
release offers."""
