"""The provider's side of the webhook tests that go through the dummy gateway's endpoint
(Stripe-shaped events signed with the dummy's secret), and the moves they make on orders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone
from payment_events import checkout_session, deliver, event

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import RepairOrder
from marketlink.orders.services import orders_expire


class Hook:
    """The provider's side: delivers events, with on-commit work run as after a real commit."""

    def __init__(self, secret: str, on_commit: Any) -> None:
        self.client = Client()
        self.secret = secret
        self.on_commit = on_commit

    def __call__(self, body: dict[str, Any] | bytes, **kwargs: Any) -> Any:
        with self.on_commit(execute=True):
            return deliver(self.client, body, self.secret, **kwargs)


def completed(order: RepairOrder, **overrides: Any) -> dict[str, Any]:
    return event("checkout.session.completed", checkout_session(order, **overrides))


def expired(order: RepairOrder) -> None:
    RepairOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert orders_expire() == 1


def late_and_sold_out(order: RepairOrder) -> None:
    expired(order)
    ServiceVariant.objects.filter(pk=order.variant_id).update(stock=0)
