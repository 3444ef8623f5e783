"""Reading a worker's identity and token life off its token's claims."""

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from foreman.api.lifecycle.identity import WARN_FRACTION, identity_of, service_account, token_claims, token_life
from foreman.api.tooling.manifests import SHARED_WORKER_USER, WORKER
from tests.tokens import jwt_of

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def claims_of(
    user: str, issued: datetime = NOW, lifetime: timedelta = timedelta(hours=1), **extra: Any
) -> dict[str, Any]:
    return {"sub": user, "iat": int(issued.timestamp()), "exp": int((issued + lifetime).timestamp()), **extra}


def test_a_jwt_payload_is_read_and_anything_else_is_no_claims() -> None:
    claims = claims_of(f"{SHARED_WORKER_USER}-gpu-01")
    assert token_claims(jwt_of(claims)) == claims
    for not_a_jwt in ("0123456789abcdef", "a.b", "a.!!!.c", "a.bm90IGpzb24.c", jwt_of({"x": 1})[:-2] + ".x.y", ""):
        assert token_claims(not_a_jwt) is None
    assert token_claims("a." + base64.urlsafe_b64encode(b"[1, 2]").decode() + ".c") is None  # JSON, not an object


def test_a_service_accounts_user_name_says_its_namespace_and_name() -> None:
    assert service_account("system:serviceaccount:fleet-ops:foreman-worker-gpu-01") == (
        "fleet-ops",
        "foreman-worker-gpu-01",
    )
    for other in (None, "", "alice", "system:serviceaccount:only-one", "system:serviceaccount:a:b:c", "system:node:x"):
        assert service_account(other) is None


def test_the_kind_of_identity_follows_the_account_and_its_binding() -> None:
    per_node = identity_of(claims_of(f"{SHARED_WORKER_USER}-gpu-01"), WORKER, "gpu-01")
    assert (per_node.kind, per_node.user) == ("per-node", f"{SHARED_WORKER_USER}-gpu-01")
    assert per_node.token_expires_at == NOW + timedelta(hours=1)
    assert identity_of(claims_of(f"{SHARED_WORKER_USER}-gpu-01"), WORKER, "gpu-02").kind == "other"  # not its node's
    assert identity_of(claims_of(SHARED_WORKER_USER), WORKER, "gpu-01").kind == "shared"
    bound = claims_of(SHARED_WORKER_USER, **{"kubernetes.io": {"pod": {"name": "w-1", "uid": "u"}, "node": {}}})
    assert identity_of(bound, WORKER, "gpu-01").kind == "pod-bound"
    assert identity_of(claims_of("system:serviceaccount:team:bot"), WORKER, "gpu-01").kind == "other"
    assert identity_of(claims_of("alice@example.com"), WORKER, "gpu-01").kind == "other"
    assert identity_of(None, WORKER, "gpu-01").kind == "other"
    legacy = identity_of({"sub": SHARED_WORKER_USER}, WORKER, "gpu-01")  # a Secret-based token: no expiry
    assert (legacy.kind, legacy.token_expires_at) == ("shared", None)


def test_a_worker_identity_is_recognised_in_whatever_namespace_foreman_is_installed() -> None:
    # the chart's `namespace` value puts the worker ServiceAccounts elsewhere than foreman-system
    assert identity_of(claims_of(f"system:serviceaccount:fleet-ops:{WORKER}-gpu-01"), WORKER, "gpu-01").kind == (
        "per-node"
    )
    assert identity_of(claims_of(f"system:serviceaccount:fleet-ops:{WORKER}"), WORKER, "gpu-01").kind == "shared"
    # a name with a colon is no ServiceAccount of ours, whatever its tail
    assert identity_of(claims_of(f"system:serviceaccount:a:b:{WORKER}"), WORKER, "gpu-01").kind == "other"


@given(
    lifetime=st.integers(min_value=600, max_value=10**8),
    elapsed=st.integers(min_value=0, max_value=2 * 10**8),
)
def test_token_life_warns_in_its_last_tenth_and_ends_at_expiry(lifetime: int, elapsed: int) -> None:
    issued = NOW - timedelta(seconds=elapsed)
    life = token_life(claims_of("u", issued, timedelta(seconds=lifetime)), NOW)
    assert life is not None
    assert life.seconds_left == lifetime - elapsed
    assert life.expired == (elapsed >= lifetime)
    assert life.running_out == ((lifetime - elapsed) / lifetime < WARN_FRACTION)
    assert 0 <= life.fraction_left <= 1


def test_a_token_that_does_not_say_when_it_expires_has_no_life_to_count() -> None:
    assert token_life(None, NOW) is None
    assert token_life({"sub": "u"}, NOW) is None
    assert token_life({"sub": "u", "exp": "tomorrow"}, NOW) is None
    life = token_life({"sub": "u", "exp": int((NOW + timedelta(hours=1)).timestamp())}, NOW)  # no iat
    assert life is not None
    assert not life.running_out
