"""Fixtures of the payments tests: the Stripe stand-in, and a shop that plays it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from order_helpers import new_order
from stripe_shop import Shop, stripe_settings
from webhook_hook import Hook

from marketlink.orders.models import RepairOrder
from marketlink.payments.gateways import dummy
from marketlink.payments.gateways.base import ProviderRefund, RefundRequest
from marketlink.testing.stripe_server import StripeStandIn


@pytest.fixture
def standin(settings: Any) -> Iterator[StripeStandIn]:
    with StripeStandIn(
        api_key="sk_test_marketlink_gateway",
        webhook_secret="whsec_marketlink_gateway",
        auto_deliver=False,
    ) as standin:
        settings.MARKETLINK = stripe_settings(standin)
        yield standin


@pytest.fixture
def shop(api: Any, standin: StripeStandIn, django_capture_on_commit_callbacks: Any) -> Shop:
    return Shop(api, standin, django_capture_on_commit_callbacks)


@pytest.fixture
def dummy_gateway(settings: Any, tasks_run_inline: None) -> None:
    """Payments on the dummy gateway, tasks run inline (Huey's immediate mode)."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}


@pytest.fixture
def secret(dummy_gateway: None) -> str:
    return dummy.webhook_secret()


@pytest.fixture
def hook(secret: str, django_capture_on_commit_callbacks: Any) -> Hook:
    return Hook(secret, django_capture_on_commit_callbacks)


@pytest.fixture
def order() -> RepairOrder:
    """A pending order of a variant with 3 units, booked through the real service."""
    return new_order(stock=3)


@pytest.fixture
def refunds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The payment intents the dummy gateway was asked to refund, one entry per new refund
    (by idempotency key)."""
    asked: dict[str, str] = {}

    def refund(self: Any, request: RefundRequest) -> ProviderRefund:
        asked.setdefault(request.idempotency_key, request.payment_intent_id)
        return ProviderRefund(
            id=f"re_{request.idempotency_key}",
            status="succeeded",
            amount_minor=request.amount_minor,
            reference=request.reference,
        )

    monkeypatch.setattr(dummy.DummyGateway, "refund", refund)
    return asked
