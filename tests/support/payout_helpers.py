"""Payouts in tests: the Stripe stand-in's Connect events delivered to the site's Connect
endpoint (signed with its secret), vendors onboarded, and a vendor's ledger read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.test import Client

from marketlink.payouts.models import PayoutEntry
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
