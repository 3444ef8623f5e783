"""User mistakes become one readable line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import typer
import yaml
from pydantic import ValidationError

from foreman.api.http.client import ConfigError
from foreman.api.http.errors import ApiError, Forbidden, NotFound, NotServed, Unauthorized, Unreachable
from foreman.api.models.validation import describe
from foreman.api.tooling.prerequisites import PrerequisiteMissing
from foreman.cli.terminal import emit

P = ParamSpec("P")
T = TypeVar("T")
USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; the message says how."""


def one_line(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        return f"invalid {error.title}: {describe(error)}"
    if isinstance(error, yaml.YAMLError):
        return "bad YAML: " + " ".join(str(error).split())
    if isinstance(error, Unreachable):
        return f"cannot reach the Kubernetes API ({error.message}); is the cluster up? (`foreman dev up`)"
    if isinstance(error, NotServed):
        return "Foreman's CRDs are not installed in this cluster (or are out of date); run `foreman install`"
    if isinstance(error, Unauthorized | Forbidden):
        return f"not allowed: {error.message}"
    if isinstance(error, ApiError):
        return error.message
    if isinstance(error, FileNotFoundError) and error.filename is not None:
        return f"no such file: {error.filename}"
    if isinstance(error, PermissionError) and error.filename is not None:
        # NB: who we run as says most in a container, whose user (uid 10001 in our image) owns no file it is given
        return f"permission denied: {error.filename} (as uid {os.getuid()})"
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def user_errors(command: Callable[P, T]) -> Callable[P, T]:
    """Wrap a CLI command so anticipated failures print `error: ...` and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (
            UserError,
            ConfigError,
            PrerequisiteMissing,
            ApiError,
            ValidationError,
            yaml.YAMLError,
            FileNotFoundError,
            PermissionError,
            TimeoutError,
        ) as error:
            emit(f"error: {one_line(error)}", err=True)
            raise typer.Exit(USER_ERROR) from None

    return wrapper


@contextlib.contextmanager
def missing_is_a_user_error(what: str, name: str, namespace: str) -> Iterator[None]:
    """A NotFound for the object asked for becomes "no <what> <name> in namespace ..." (a missing resource type is
    NotServed, which `one_line` explains)."""
    try:
        yield
    except NotFound:
        raise UserError(f"no {what} {name!r} in namespace {namespace}") from None
