"""The catalogue refuses a price Stripe could not charge, so no order can be booked at one.

Stripe takes at most 99,999,999 minor units and at least its minimum charge (0.50 USD, or the
currency's own figure in Stripe's table); three-decimal currencies must end in 0 (10.500 KWD).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketlink.catalog.models import ServiceVariant
from marketlink.catalog.services import variant_create
from marketlink.exceptions import InvalidInput
from marketlink.testing.factories import ServiceFactory, VariantFactory

pytestmark = pytest.mark.django_db

VARIANT = {"name": "Standard", "price": "29.99", "estimated_minutes": 15, "stock": 5}


def create(api, vendor_user, price):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    return api.post(
        f"/services/{service.id}/variants/", {**VARIANT, "price": price}, user=vendor_user
    )


def assert_price_refused(response, message):
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["errors"][0]["loc"] == ["body", "price"]
    assert body["errors"][0]["msg"] == message
    assert body["message"] == message


@pytest.mark.parametrize(
    ("currency", "price", "message"),
    [
        ("usd", "1000000.00", "price must be at most 999999.99 USD"),
        ("usd", "0.49", "price must be at least 0.50 USD"),
        ("gbp", "0.29", "price must be at least 0.30 GBP"),
        ("huf", "174.99", "price must be at least 175.00 HUF"),
        ("jpy", "49", "price must be at least 50 JPY"),
        ("kwd", "100000.00", "price must be at most 99999.990 KWD"),
        ("isk", "1000000", "price must be at most 999999.00 ISK"),
    ],
)
def test_a_price_stripe_cannot_charge_is_refused_on_create_and_update(
    api, vendor_user, settings, currency, price, message
):
    settings.MARKETLINK = {"CURRENCY": currency}
    assert_price_refused(create(api, vendor_user, price), message)
    variant = VariantFactory(service__vendor=vendor_user.marketlink_vendor, price=Decimal("100"))
    patched = api.patch(f"/services/variants/{variant.id}/", {"price": price}, user=vendor_user)
    assert_price_refused(patched, message)
    variant.refresh_from_db()
    assert variant.price == Decimal("100")
    assert ServiceVariant.objects.count() == 1


@pytest.mark.parametrize(
    ("currency", "price"),
    [
        ("usd", "999999.99"),
        ("usd", "0.50"),
        ("jpy", "99999999"),
        ("jpy", "50"),
        ("kwd", "99999.99"),
        # Stripe publishes no minimum for KWD: the smallest amount it can charge is the floor.
        ("kwd", "0.01"),
        ("isk", "999999"),
    ],
)
def test_prices_at_stripes_limits_are_accepted(api, vendor_user, settings, currency, price):
    settings.MARKETLINK = {"CURRENCY": currency}
    response = create(api, vendor_user, price)
    assert response.status_code == 201, response.json()
    assert Decimal(response.json()["data"]["price"]) == Decimal(price)


def test_icelandic_prices_must_be_whole_kronur(api, vendor_user, settings):
    settings.MARKETLINK = {"CURRENCY": "isk"}
    assert_price_refused(
        create(api, vendor_user, "1500.50"),
        "price must be a whole number in ISK, which Stripe charges without fractions",
    )


def test_a_three_decimal_price_must_end_in_zero(settings):
    """Stripe wants the last of the three digits to be 0: 10.505 KWD cannot be charged."""
    settings.MARKETLINK = {"CURRENCY": "kwd"}
    with pytest.raises(InvalidInput) as refused:
        variant_create(
            service=ServiceFactory(), name="Odd", price=Decimal("10.505"), estimated_minutes=5
        )
    assert refused.value.message == "price must be a multiple of 0.010 KWD"
    assert not ServiceVariant.objects.exists()


@pytest.mark.postgres
@pytest.mark.parametrize("price", ["21474836.48", "99999999.99"])
def test_a_huge_price_is_refused_on_postgresql_and_nothing_is_created(api, vendor_user, price):
    """Above 21,474,836.47 USD the dummy gateway's amount would overflow PostgreSQL's integer;
    the price is refused long before, at Stripe's limit."""
    response = create(api, vendor_user, price)
    assert_price_refused(response, "price must be at most 999999.99 USD")
    assert not ServiceVariant.objects.exists()
