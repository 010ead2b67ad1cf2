from __future__ import annotations

import uuid

from ninja import Schema


class WebhookOut(Schema):
    event_id: str
    status: str
    result: str


class PaymentStateOut(Schema):
    """What the Checkout redirect pages show: the order's status as marketlink knows it, and
    what the provider says about the checkout (which changes nothing by itself)."""

    id: uuid.UUID
    status: str
    provider_says_paid: bool
