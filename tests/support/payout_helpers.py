"""Payouts in tests: the Stripe stand-in's Connect events delivered to the site's Connect
endpoint (signed with its secret), vendors onboarded, and a vendor's ledger read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.test import Client

from marketlink.orders.models import RepairOrder
from marketlink.outbox.drainer import drain
from marketlink.payouts.models import Payout, PayoutEntry
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory
from marketlink.testing.stripe_server import StripeStandIn

CONNECT_WEBHOOK = "/api/webhooks/connect/"


def deliver_connect(standin: StripeStandIn, event: dict[str, Any]) -> Any:
    """POST a connected account's event as Stripe's Connect endpoint would, signed now."""
    payload = json.dumps(event).encode()
    signature = standin.sign(payload, secret=standin.connect_webhook_secret)
    return Client().post(
        CONNECT_WEBHOOK,
        payload,
        content_type="application/json",
        headers={"Stripe-Signature": signature},
    )


def connect_events(standin: StripeStandIn, account_id: str) -> list[dict[str, Any]]:
    return [event for event in standin.events if event.get("account") == account_id]


def onboarded_account(api: Any, standin: StripeStandIn, vendor: Any) -> str:
    """The vendor asks for onboarding and finishes it at the stand-in; its events reach the
    site. Returns the account id."""
    assert api.post("/vendors/payouts/onboarding/", user=vendor.user).status_code == 200
    account_id = str(vendor.connected_account.account_id)
    standin.finish_onboarding(account_id)
    for event in connect_events(standin, account_id):
        assert deliver_connect(standin, event).status_code == 200
    return account_id


def ledger_sum(vendor: Any) -> Decimal:
    return sum((e.amount for e in PayoutEntry.objects.filter(vendor=vendor)), Decimal("0.00"))


class Marketplace:
    """A customer, an onboarded vendor and Stripe's stand-in, played in one process: what is
    owed after a change is drained at once (the outbox), and Stripe's events are delivered
    when the test says so (``deliver``), as they come."""

    def __init__(self, api: Any, shop: Any) -> None:
        self.api = api
        self.shop = shop
        self.standin: StripeStandIn = shop.standin

    def vendor(self) -> Any:
        vendor = VendorProfileFactory()
        onboarded_account(self.api, self.standin, vendor)
        vendor.refresh_from_db()
        return vendor

    def processing(self, vendor: Any, price: str = "29.99") -> dict[str, Any]:
        """An order of the vendor's, paid (its events delivered) and being processed."""
        variant = VariantFactory(service__vendor=vendor, price=price)
        order, session = self.shop.opened(AccountFactory().user, variant)
        self.standin.pay(session)
        self.deliver()
        assert RepairOrder.objects.get(pk=order["id"]).status == "processing"
        return order

    def deliver(self) -> list[tuple[str, int]]:
        """Stripe's new events to the site, in order; then what they owe is done."""
        said = self.shop.deliver_new()
        drain()
        return said

    def complete(self, order: dict[str, Any]) -> dict[str, Any]:
        vendor = RepairOrder.objects.get(pk=order["id"]).vendor
        with self.shop.on_commit(execute=True):
            answer = self.api.post(f"/orders/{order['id']}/complete/", user=vendor.user)
        assert answer.status_code == 200, answer.json()
        drain()
        return answer.json()["data"]  # type: ignore[no-any-return]

    def refund(self, order: dict[str, Any]) -> Any:
        vendor = RepairOrder.objects.get(pk=order["id"]).vendor
        with self.shop.on_commit(execute=True):
            answer = self.api.post(f"/orders/{order['id']}/refund/", user=vendor.user)
        drain()
        return answer

    def payout(self, order: dict[str, Any]) -> Payout:
        return Payout.objects.get(order_id=order["id"])

    def transfers_of(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            transfer
            for transfer in self.standin.transfers.values()
            if transfer["metadata"].get("order_id") == str(order["id"])
        ]


def dummy_onboarded(api: Any, vendor: Any) -> None:
    """The vendor onboards on the dummy gateway's own page (instant)."""
    link = api.post("/vendors/payouts/onboarding/", user=vendor.user).json()["data"]["url"]
    path = urlsplit(link).path
    assert Client().post(path, {"action": "finish"}).status_code == 303
