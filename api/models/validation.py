"""Readable, one-line descriptions of validation errors (for CLI messages and conditions)."""

from __future__ import annotations

import difflib
from types import UnionType
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError


def describe(error: ValidationError) -> str:
    """`spec.requiredCapability.accelerator: Input should be ...; spec.kind: Field required`, wire names in paths."""
    parts = []
    for detail in error.errors(include_url=False):
        path = ".".join(str(part) for part in detail["loc"]) or "(object)"
        parts.append(f"{path}: {detail['msg']}")
    return "; ".join(parts)


def unknown_fields(model: type[BaseModel], data: object, at: str = "") -> list[str]:
    """Paths of the keys in `data` that `model` has no field for, through nested models and lists of them: what
    `kubectl apply` refuses as "unknown field". Our models ignore unknown fields when they read from the API (a newer
    CRD must not break a daemon), so user input is checked with this before it is validated.

    Free-form maps (dict fields, models with extra="allow" such as the payload) take any key; object metadata is not
    checked (ObjectMeta models only the fields we use)."""
    if not isinstance(data, dict) or model.model_config.get("extra") == "allow" or model.__name__ == "ObjectMeta":
        return []
    found = []
    fields = {field.alias or name: field for name, field in model.model_fields.items()}
    for key, value in data.items():
        path = f"{at}.{key}" if at else str(key)
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(str(key), fields, n=1)
            found.append(f"{path} (did you mean {close[0]}?)" if close else path)
            continue
        for nested in _models_in(field.annotation):
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                found += unknown_fields(nested, item, f"{path}[{index}]" if isinstance(value, list) else path)
    return found


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The models a field's type holds directly, in an Optional, a union or a list (not in a dict: free-form)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (list, Union, UnionType, Annotated):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    return []
