"""Stripe's webhook signature scheme, for the gateways that sign their own events.

``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">``. The dummy gateway signs
with it so its events travel the very same verified pipeline as Stripe's; the Stripe gateway
verifies with the official SDK instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from marketlink import conf
from marketlink.payments.gateways.base import InvalidSignature


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(payload: bytes, header: str, secret: str, tolerance: int) -> str | None:
    """None when the header proves ``payload`` was signed with ``secret`` recently enough;
    otherwise what is wrong with it."""
    if not secret.strip():
        return "no webhook secret is configured, so no signature can be trusted"
    if not header.isascii():  # hmac.compare_digest raises TypeError on non-ASCII text
        return "the Stripe-Signature header is not ASCII"
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return "the Stripe-Signature header has no timestamp"
    expected = sign(payload, secret, timestamp).split("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        return "the signature does not match the payload"
    if abs(time.time() - timestamp) > tolerance:
        return "the signature's timestamp is outside the tolerance"
    return None


def verified_event(payload: bytes, signature: str, secret: str) -> dict[str, Any]:
    """The event in ``payload`` if ``secret`` signed it recently enough (the dummy gateway's
    endpoints); else :class:`InvalidSignature` saying what is wrong."""
    problem = verify(payload, signature, secret, conf.get().STRIPE_WEBHOOK_TOLERANCE)
    if problem:
        raise InvalidSignature(f"Invalid webhook signature: {problem}.")
    return json.loads(payload)  # type: ignore[no-any-return]
