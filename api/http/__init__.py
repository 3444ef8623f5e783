"""The HTTP layer: requests prepared (pure), sent by `kube.Kube` (the one module that imports the Kubernetes client),
answers as exception classes, and what each Kubernetes release offers."""
