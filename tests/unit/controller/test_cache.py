from datetime import timedelta

from foreman.api.models.nodes import FleetNode
from foreman.controller.cache import Cache
from tests.factories import T0, node


def written_at(name: str, when: str) -> FleetNode:
    body = node(name).to_wire()
    body["metadata"]["managedFields"] = [{"manager": "foreman", "operation": "Update", "time": when}]
    return FleetNode.model_validate(body)


def test_a_node_first_seen_counts_as_heard_when_the_apiserver_last_stored_it() -> None:
    """At start a node silent for an hour got the full grace: the apiserver's managedFields time says
    when it was last written, on the apiserver's clock, never later than now."""
    cache = Cache()
    cache.replace_nodes([written_at("silent", "2025-12-31T23:00:00Z"), written_at("fresh", "2026-01-01T00:00:30Z")], T0)
    assert cache.heard_at["silent"] == T0 - timedelta(hours=1) + timedelta(seconds=1)  # whole seconds: one of grace
    assert cache.heard_at["fresh"] == T0
    assert cache.heard_at.keys() == {"silent", "fresh"}
    cache.upsert_node(node("plain"), T0)
    assert cache.heard_at["plain"] == T0  # nothing known: the old rule
