"""Fixtures of the payments tests: the Stripe stand-in, and a shop that plays it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stripe_shop import Shop, stripe_settings

from marketlink.testing.stripe_server import StripeStandIn


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Huey's immediate mode, whatever HUEY the environment configured (Redis in CI)."""
    from huey.contrib.djhuey import HUEY

    was = HUEY.immediate
    HUEY.immediate = True
    yield
    HUEY.immediate = was


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
