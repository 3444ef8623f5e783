"""The public import paths users write against (README, examples/, docs/) keep working, and each facade is the whole
public namespace of the module it stands for."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[3]
DOCUMENTED = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/**/*.py")]
FACADES = {
    "foreman.api.resources": ("foreman.api.models.tasks", "foreman.api.models.nodes"),
    "foreman.api.sdk": ("foreman.api.tooling.sdk",),
    "foreman.api.envelope": ("foreman.api.models.envelope",),
}


def documented_imports() -> list[tuple[str, str]]:
    found = set()
    for path in DOCUMENTED:
        for module, names in re.findall(r"^from (foreman\.api[\w.]*) import ([\w, ]+)$", path.read_text(), re.M):
            found.update((module, name.strip()) for name in names.split(","))
    return sorted(found)


def test_readme_and_examples_import_the_public_paths() -> None:
    assert {module for module, _ in documented_imports()} == set(FACADES)


@pytest.mark.parametrize(("module", "name"), documented_imports())
def test_every_documented_import_works(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is not None


def public_names(module: str) -> set[str]:
    """The names a module defines at its top level (classes, functions, constants, type aliases)."""
    path = importlib.import_module(module).__file__
    assert path is not None
    names: set[str] = set()
    for node in ast.parse(Path(path).read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize(("facade", "real"), FACADES.items())
def test_a_facade_re_exports_every_public_name_of_its_modules(facade: str, real: tuple[str, ...]) -> None:
    """Every public name of the modules it stands for; the task and node facade also gives what every resource has
    (`Resource`, `GROUP`, ...), which lives in the models' base."""
    public = importlib.import_module(facade)
    assert set(public.__all__) >= set().union(*(public_names(module) for module in real))
    assert all(getattr(public, name) is not None for name in public.__all__)
