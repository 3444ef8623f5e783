"""Wire models: the pydantic shapes of what Foreman reads and writes (AgenticTask, FleetNode, Agent, TaskSchedule, the
result envelope, the Lease, the transcript's lines), parsed once where data enters; the CRD schemas' source."""
