"""Who may talk to the dashboard (pure): the Host a request names, and where an action comes from.

The dashboard acts with its user's credentials, so a page on another site must not be able to use it:
- every request must name a Host the dashboard answers to (loopback names, the address it is bound to, or hosts
  allowed by flag): a DNS-rebinding page names its own host and is refused, reads included;
- an action (a POST) must come from the dashboard's own page: an `Origin` equal to the Host (or, without Origin,
  `Sec-Fetch-Site: same-origin`), no cross-site fetch metadata, and the per-server token the page carries.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_HEADER = "X-Foreman-Token"


def hostname(host: str) -> str:
    """The name in a Host header, without port or IPv6 brackets."""
    parsed = urlsplit(f"//{host}")
    try:
        return (parsed.hostname or "").lower()
    except ValueError:
        return ""


def allowed_hosts(address: str, extra: tuple[str, ...] = ()) -> frozenset[str]:
    """Loopback names, the bound address unless it is a wildcard, and `extra`."""
    bound = set() if address in ("0.0.0.0", "::", "") else {hostname(address) or address}
    return LOOPBACK_NAMES | bound | {name.lower() for name in extra}


def host_refusal(host: str | None, allowed: frozenset[str]) -> str | None:
    if not host or hostname(host) not in allowed:
        return f"this dashboard does not answer to Host {host!r} (allow it with --allow-host)"
    return None


def action_refusal(
    *, host: str | None, origin: str | None, fetch_site: str | None, token: str | None, expected: str
) -> str | None:
    """Why a POST may not act, or None when it comes from the dashboard's own page."""
    if fetch_site is not None and fetch_site != "same-origin":
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != (host or "").lower():
            return f"request from another origin refused ({origin})"
    elif fetch_site is None:
        return "request without Origin refused"
    if not token or not hmac.compare_digest(token, expected):
        return f"missing or wrong {TOKEN_HEADER}"
    return None
