"""Client tooling: the planner SDK, declarative schedule sync, CRD and manifest generation, install, and the local
control plane."""
