"""The CRDs change additively within v1alpha1 (issue 35, part 5): against the previous release's (tests/
previous_release/), nothing is removed, retyped, newly required or narrowed, and the README's upgrade notes name
every field added since."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from foreman.api.tooling.crd import all_crds

ROOT = Path(__file__).resolve().parents[4]
SNAPSHOT = ROOT / "tests" / "previous_release"
COMMIT = "67166792b101d5f4279fbd479783f7b38a6e9ac8"
NEW_RULES_THAT_HOLD = {
    "gates: a passing verdict needs every gate passed",
    "spec.createdBy: an agent-made schedule (source agent) names the task that made it",
}
"""Rules added to a field that stored objects already had, each true of every object the previous release stored
(there: a result without `gates`; a schedule whose source is not `agent`)."""
RAISED = ("minimum", "minLength", "minItems", "minProperties")
LOWERED = ("maximum", "maxLength", "maxItems", "maxProperties")


def previous() -> dict[str, dict[str, Any]]:
    documents = (yaml.safe_load(path.read_text()) for path in sorted((SNAPSHOT / "crds").glob("*.yaml")))
    return {crd["metadata"]["name"]: crd for crd in documents}


def _children(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    children = {f".{name}": child for name, child in (schema.get("properties") or {}).items()}
    if isinstance(schema.get("items"), dict):
        children["[]"] = schema["items"]
    if isinstance(schema.get("additionalProperties"), dict):
        children["{}"] = schema["additionalProperties"]
    return children


def changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> tuple[list[str], list[str]]:
    """(breaking changes, added fields) from schema `old` to `new` (pure)."""
    breaking: list[str] = []
    for word in ("type", "format", "pattern", "x-kubernetes-preserve-unknown-fields"):
        if old.get(word) != new.get(word):
            breaking.append(f"{path}: {word} {old.get(word)!r} -> {new.get(word)!r}")
    if newly := set(new.get("required", [])) - set(old.get("required", [])):
        breaking.append(f"{path}: newly required {sorted(newly)}")
    if "enum" in new and (lost := set(old.get("enum", new["enum"])) - set(new["enum"])):
        breaking.append(f"{path}: enum loses {sorted(lost)}")
    for word in RAISED:
        if word in new and new[word] > old.get(word, new[word]):
            breaking.append(f"{path}: {word} raised to {new[word]}")
    for word in LOWERED:
        if word in new and new[word] < old.get(word, new[word] + 1):
            breaking.append(f"{path}: {word} lowered to {new[word]}")
    old_rules = {rule["message"] for rule in old.get("x-kubernetes-validations", [])}
    for rule in new.get("x-kubernetes-validations", []):
        if rule["message"] not in old_rules | NEW_RULES_THAT_HOLD:
            breaking.append(f"{path}: new rule {rule['message']!r}")
    added: list[str] = []
    old_children, new_children = _children(old), _children(new)
    for step, child in old_children.items():
        if step not in new_children:
            breaking.append(f"{path}{step}: removed")
            continue
        more_breaking, more_added = changes(child, new_children[step], path + step)
        breaking += more_breaking
        added += more_added
    added += [path + step for step in new_children if step not in old_children]
    return breaking, added


def test_every_crd_change_since_the_previous_release_is_additive_and_in_the_upgrade_notes() -> None:
    readme = (ROOT / "README.md").read_text()
    notes = readme[readme.index("## Upgrade notes") : readme.index("## Development")]
    before = previous()
    for crd in all_crds():
        name = crd["metadata"]["name"]
        old = before[name]
        assert crd["spec"]["scope"] == old["spec"]["scope"], name
        assert set(old["spec"]["names"].get("shortNames", [])) <= set(crd["spec"]["names"].get("shortNames", []))
        old_versions = {v["name"]: v for v in old["spec"]["versions"]}
        versions = {v["name"]: v for v in crd["spec"]["versions"]}
        assert set(old_versions) <= set(versions), f"{name}: a version removed"
        for version, stored in old_versions.items():
            assert versions[version]["storage"] == stored["storage"], f"{name} {version}: storage moved"
            schema = versions[version]["schema"]["openAPIV3Schema"]
            breaking, added = changes(stored["schema"]["openAPIV3Schema"], schema)
            assert breaking == [], f"{name} {version}"
            unlisted = [path for path in added if not re.search(rf"`[^`]*\b{re.escape(_leaf(path))}\b", notes)]
            assert unlisted == [], f"{name}: fields added since the previous release, not in the upgrade notes"


def _leaf(path: str) -> str:
    return re.sub(r"(\[\]|\{\})+$", "", path).rsplit(".", 1)[-1]


def test_breaking_changes_are_found() -> None:
    old = {"type": "object", "required": ["a"], "properties": {"a": {"type": "string", "maxLength": 9}}}
    new = {"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "integer", "maxLength": 3}}}
    breaking, added = changes(old, new)
    assert breaking == [
        ": newly required ['b']",
        ".a: type 'string' -> 'integer'",
        ".a: maxLength lowered to 3",
    ]
    assert added == []
    assert changes(new, {**new, "properties": {**new["properties"], "c": {}}}) == ([], [".c"])


def test_the_snapshot_is_the_previous_release_where_git_has_it() -> None:
    """tests/previous_release/ is manifests/ of COMMIT as it was (a CI clone without the history still has it)."""
    for path in sorted(SNAPSHOT.rglob("*.yaml")):
        relative = f"manifests/{path.relative_to(SNAPSHOT)}"
        shown = subprocess.run(["git", "show", f"{COMMIT}:{relative}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode != 0:
            pytest.skip(f"commit {COMMIT[:7]} is not in this clone's history")
        assert shown.stdout == path.read_text(), relative
