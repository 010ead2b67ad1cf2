"""Playing the customer, the vendor and Stripe in tests of the Stripe gateway: the real SDK over
HTTP to the local stand-in, its events delivered (signed) to the webhook when the test says so."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone
from order_helpers import history, stock_of

from marketlink.orders.models import RepairOrder
from marketlink.testing.stripe_server import StripeStandIn

__all__ = ["WEBHOOK", "Shop", "api_calls", "history", "lapse", "status_of", "stock_of"]

WEBHOOK = "/api/webhooks/payment/"


def stripe_settings(standin: StripeStandIn, **extra: Any) -> dict[str, Any]:
    return {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": standin.api_key,
        "STRIPE_WEBHOOK_SECRET": standin.webhook_secret,
        "STRIPE_API_BASE": standin.api_base,
        **extra,
    }


class Shop:
    """The customer, the vendor and Stripe, as a test plays them."""

    def __init__(self, api: Any, standin: StripeStandIn, on_commit: Any) -> None:
        self.api = api
        self.standin = standin
        self.on_commit = on_commit
        self.browser = Client()
        self.delivered: set[str] = set()

    def book(self, customer: Any, variant: Any) -> dict[str, Any]:
        response = self.api.post("/orders/", {"variant_id": str(variant.id)}, user=customer)
        assert response.status_code == 201, response.json()
        return response.json()["data"]

    def open_link(self, order: dict[str, Any]) -> Any:
        """What the customer's browser does with ``payment_url``."""
        return self.browser.get(order["payment_url"])

    def session_id(self, order: dict[str, Any]) -> str:
        session_id = RepairOrder.objects.get(pk=order["id"]).checkout_session_id
        assert session_id
        return session_id

    def opened(self, customer: Any, variant: Any) -> tuple[dict[str, Any], str]:
        """A booked order whose checkout the customer opened: ``(order, session id)``."""
        order = self.book(customer, variant)
        assert self.open_link(order).status_code == 303
        return order, self.session_id(order)

    def deliver(self, event: dict[str, Any], *, run_on_commit: bool = True) -> Any:
        """POST ``event`` as Stripe would, signed now; on-commit work runs after the answer."""
        payload = json.dumps(event, indent=2).encode()
        with self.on_commit(execute=run_on_commit):
            response = self.browser.post(
                WEBHOOK,
                payload,
                content_type="application/json; charset=utf-8",
                headers={"Stripe-Signature": self.standin.sign(payload)},
            )
        self.delivered.add(event["id"])
        return response

    def undelivered(self, *types: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.standin.events
            if e["id"] not in self.delivered and (not types or e["type"] in types)
        ]

    def deliver_new(self, *types: str) -> list[tuple[str, int]]:
        """Deliver the events Stripe emitted since the last delivery, in emission order."""
        return [(e["type"], self.deliver(e).status_code) for e in self.undelivered(*types)]


def status_of(order: dict[str, Any]) -> str:
    return RepairOrder.objects.get(pk=order["id"]).status


def lapse(order: dict[str, Any]) -> None:
    """The reservation's time is up (the clock moved on)."""
    RepairOrder.objects.filter(pk=order["id"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def api_calls(standin: StripeStandIn) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in standin.requests_log]
