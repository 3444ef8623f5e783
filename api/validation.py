"""Readable, one-line descriptions of validation errors (for CLI messages and conditions)."""

from __future__ import annotations

from pydantic import ValidationError


def describe(error: ValidationError) -> str:
    """`spec.requiredCapability.accelerator: Input should be ...; spec.kind: Field required`, wire names in paths."""
    parts = []
    for detail in error.errors(include_url=False):
        path = ".".join(str(part) for part in detail["loc"]) or "(object)"
        parts.append(f"{path}: {detail['msg']}")
    return "; ".join(parts)
