"""Reading resources from YAML the way `kubectl apply -f` does: a file, every *.yaml / *.yml / *.json file of a
folder (sorted by name), or stdin (`-`); unknown fields are refused, not dropped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from foreman.api.http.requests import ObjectTooLarge, creatable_body
from foreman.api.models.base import Resource
from foreman.api.models.validation import describe, unknown_fields
from foreman.cli.errors import UserError

R = TypeVar("R", bound=Resource)
SUFFIXES = (".yaml", ".yml", ".json")


def documents(source: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, document) for every non-empty YAML document in `source`; `where` names the file and document."""
    if source == "-":
        files: list[tuple[str, str]] = [("stdin", sys.stdin.read())]
    else:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"{source}: a folder with no {', '.join(SUFFIXES)} files in it")
            files = [(str(p), p.read_text()) for p in found]
        else:
            files = [(source, path.read_text())]
    for name, text in files:
        for index, document in enumerate(yaml.safe_load_all(text), start=1):
            if document is None:
                continue
            where = f"{name}, document {index}"
            if not isinstance(document, dict):
                raise UserError(f"{where}: expected a mapping, got {type(document).__name__}")
            yield where, document


def resource(model: type[R], document: dict[str, Any], where: str) -> R:
    """One document as `model`: of its kind, no unknown fields (as `kubectl apply` refuses them), valid, and small
    enough to store."""
    kind = model.model_fields["kind"].default
    if document.get("kind") != kind:
        raise UserError(f"{where}: expected kind {kind}, got {document.get('kind')}")
    unknown = unknown_fields(model, document)
    if unknown:
        raise UserError(f"{where}: unknown field {', '.join(unknown)}")
    try:
        parsed = model.model_validate(document)
        creatable_body(parsed)
    except ValidationError as error:
        raise UserError(f"{where}: {describe(error)}") from None
    except ObjectTooLarge as error:
        raise UserError(f"{where}: {error}") from None
    return parsed
