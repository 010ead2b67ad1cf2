"""Prices reach the payment provider as the amount the customer was shown, in every currency.

Stripe reads ``amount`` in the currency's minor unit: cents for USD, yen for JPY (no minor unit)
and thousandths for the three-decimal dinars and rials (BHD, JOD, KWD, OMR, TND).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from stripe_shop import stripe_settings

from marketlink.testing.factories import VariantFactory
from marketlink.testing.stripe_server import StripeStandIn

pytestmark = pytest.mark.django_db


def book(api: Any, customer: Any, variant: Any) -> dict[str, Any]:
    response = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer)
    assert response.status_code == 201, response.json()
    return response.json()["data"]


@pytest.fixture
def standin(settings: Any) -> Iterator[StripeStandIn]:
    with StripeStandIn(
        api_key="sk_test_marketlink_money",
        webhook_secret="whsec_marketlink_money",
        auto_deliver=False,
    ) as standin:
        yield standin


@pytest.mark.parametrize(
    ("currency", "price", "minor_units"),
    [
        ("kwd", Decimal("10.50"), 10500),
        ("bhd", Decimal("0.25"), 250),
        ("usd", Decimal("10.50"), 1050),
        ("jpy", Decimal("1050"), 1050),
        ("isk", Decimal("1050"), 105000),  # two-decimal in Stripe's API, whole krónur only
    ],
)
def test_stripe_is_asked_for_the_price_in_the_currencys_minor_unit(
    api, customer_user, settings, standin, currency, price, minor_units
):
    settings.MARKETLINK = stripe_settings(standin, CURRENCY=currency)
    order = book(api, customer_user, VariantFactory(price=price))

    assert Client().get(order["payment_url"]).status_code == 303

    [session] = standin.sessions.values()
    assert (session["amount_total"], session["currency"]) == (minor_units, currency)


@pytest.mark.parametrize(
    ("currency", "price", "shown"),
    [
        ("kwd", Decimal("10.50"), "10.500 KWD"),
        ("usd", Decimal("40.00"), "40.00 USD"),
        ("jpy", Decimal("4000"), "4000 JPY"),
    ],
)
def test_the_dummy_checkout_page_shows_the_price_booked(
    api, customer_user, settings, currency, price, shown
):
    settings.MARKETLINK = {"CURRENCY": currency}
    order = book(api, customer_user, VariantFactory(price=price))

    page = Client().get(order["payment_url"], follow=True)

    assert page.status_code == 200
    assert f'<p class="amount" id="amount">{shown}</p>' in page.content.decode()
