"""Foreman's API, one subpackage per idea (docs/design.md, "Module map"): `models`, `http`, `state`, `runtime`,
`tooling`."""

from importlib import metadata

PACKAGE_VERSION = metadata.version("foreman-dispatch")
"""The installed version (`foreman --version`, FleetNode.status.agentVersion, every request's User-Agent)."""
