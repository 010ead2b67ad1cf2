"""Stripe-shaped events about an order, signed the way Stripe signs them, for the webhook tests.

The shapes are the slice of Stripe's objects the pipeline reads (the same the Stripe stand-in
emits): a Checkout Session, a PaymentIntent, a Charge. ``deliver`` posts one to the webhook
through Django's test client.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from marketlink.money import to_minor_units
from marketlink.orders.models import RepairOrder
from marketlink.payments.gateways.signatures import sign

WEBHOOK = "/api/webhooks/payment/"


def minor(order: RepairOrder) -> int:
    return to_minor_units(order.total_amount, order.currency)


def checkout_session(order: RepairOrder, **overrides: Any) -> dict[str, Any]:
    obj = {
        "id": order.checkout_session_id or f"cs_test_{order.id.hex[:16]}",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": minor(order),
        "currency": order.currency,
        "client_reference_id": str(order.id),
        "metadata": {"order_id": str(order.id)},
        "payment_intent": f"pi_test_{order.id.hex[:16]}",
    }
    return obj | overrides


def payment_intent(order: RepairOrder, **overrides: Any) -> dict[str, Any]:
    obj = {
        "id": f"pi_test_{order.id.hex[:16]}",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": minor(order),
        "amount_received": minor(order),
        "currency": order.currency,
        "metadata": {"order_id": str(order.id)},
    }
    return obj | overrides


def event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{secrets.token_hex(8)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": obj},
    }


def signed(body: dict[str, Any] | bytes, secret: str, timestamp: int | None = None) -> Any:
    """``(payload, Stripe-Signature header)`` for ``body`` signed with ``secret``."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return payload, sign(payload, secret, timestamp)


def deliver(
    client: Any,
    body: dict[str, Any] | bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    content_type: str = "application/json",
    signature: str | None = None,
) -> Any:
    """POST ``body`` to the webhook as Stripe would (signed now unless ``signature`` is given)."""
    payload, header = signed(body, secret, timestamp)
    headers = {} if signature == "" else {"Stripe-Signature": signature or header}
    return client.post(WEBHOOK, payload, content_type=content_type, headers=headers)
