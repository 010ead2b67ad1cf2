"""Fixtures of the payouts tests: payouts switched on (a 10 % fee), on the dummy gateway or on
Stripe's stand-in (its Connect events delivered by the test), and a marketplace played in one
process whose money must add up when each test is done."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from payout_helpers import Marketplace
from payouts_money import money_problems
from stripe_shop import Shop, stripe_settings

from marketlink.testing.stripe_server import StripeStandIn

PAYOUTS = {"PAYOUTS_ENABLED": True, "PLATFORM_FEE_PERCENT": "10"}


@pytest.fixture
def payouts_on(settings: Any) -> None:
    current = getattr(settings, "MARKETLINK", {})
    settings.MARKETLINK = {**current, **PAYOUTS}


@pytest.fixture
def connect_standin(settings: Any) -> Iterator[StripeStandIn]:
    """Stripe's stand-in, payouts on; it keeps its events for the test to deliver."""
    with StripeStandIn(auto_deliver=False) as standin:
        settings.MARKETLINK = stripe_settings(
            standin, STRIPE_CONNECT_WEBHOOK_SECRET=standin.connect_webhook_secret, **PAYOUTS
        )
        yield standin


@pytest.fixture
def market(
    api: Any,
    connect_standin: StripeStandIn,
    django_capture_on_commit_callbacks: Any,
    tasks_run_inline: None,
) -> Iterator[Marketplace]:
    """The marketplace a test plays; when it is done, the money must add up."""
    yield Marketplace(api, Shop(api, connect_standin, django_capture_on_commit_callbacks))
    problems = money_problems(connect_standin)
    assert not problems, "the money does not add up:\n" + "\n".join(problems)
