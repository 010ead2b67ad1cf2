"""Payouts' settings, the fee frozen on each order, what each caller sees of the money split,
and the gate that keeps a vendor who cannot be paid out of the catalogue and its bookings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import checks

from marketlink.money import platform_fee
from marketlink.orders.models import RepairOrder
from marketlink.testing.factories import VariantFactory

pytestmark = pytest.mark.django_db


def ids() -> set[str]:
    return {message.id for message in checks.run_checks() if message.id.startswith("marketlink")}


@pytest.mark.parametrize(
    "bad",
    [
        {"CONNECT_COUNTRY": "XX"},
        {"CONNECT_COUNTRY": "USA"},
        {"PLATFORM_FEE_PERCENT": "100.5"},
        {"PLATFORM_FEE_PERCENT": -1},
        {"PLATFORM_FEE_FIXED": "-0.30"},
        {"PAYOUT_RELEASE": "whenever"},
    ],
)
def test_bad_payout_settings_are_refused_by_a_system_check(settings, bad):
    settings.MARKETLINK = bad
    assert "marketlink.E001" in ids()


def test_a_fixed_fee_the_currency_cannot_carry_is_refused(settings):
    settings.MARKETLINK = {"CURRENCY": "jpy", "PLATFORM_FEE_FIXED": "0.30"}
    assert "marketlink.E010" in ids()
    settings.MARKETLINK = {"CURRENCY": "jpy", "PLATFORM_FEE_FIXED": "30"}
    assert "marketlink.E010" not in ids()


def test_payouts_on_need_their_app_and_the_connect_secret(settings):
    settings.MARKETLINK = {
        "PAYOUTS_ENABLED": True,
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": "sk_test_x",
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    assert "marketlink.E012" in ids()
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "marketlink.payouts"]
    assert "marketlink.E011" in ids()


@pytest.mark.parametrize(
    ("total", "currency", "percent", "fixed", "fee"),
    [
        ("29.99", "usd", "10", "0", "3.00"),
        ("25.05", "usd", "10", "0", "2.51"),  # 2.505: half up, where half-even gives 2.50
        ("25.05", "usd", "10", "0.30", "2.81"),
        ("1005", "jpy", "5", "0", "50.00"),  # 50.25 yen: whole yen
        ("1010", "isk", "5", "0", "51.00"),  # 50.5 krónur: whole krónur, half up
        ("29.99", "usd", "0", "50", "29.99"),  # never more than the total
        ("29.99", "usd", "100", "0", "29.99"),
    ],
)
def test_the_fee_rounds_half_up_to_the_currency_step(total, currency, percent, fixed, fee):
    found = platform_fee(Decimal(total), currency, percent=Decimal(percent), fixed=Decimal(fixed))
    assert found == Decimal(fee)


def book(api, user, variant):
    return api.post("/orders/", {"variant_id": str(variant.id)}, user=user)


def test_the_fee_is_frozen_on_the_order_and_shown_to_its_vendor_and_staff_only(
    api, customer_user, staff_user, payouts_on, settings
):
    variant = VariantFactory(price="29.99", service__vendor__payouts_ready=True)
    vendor = variant.service.vendor
    booked = book(api, customer_user, variant).json()["data"]
    assert (booked["platform_fee"], booked["vendor_share"], booked["payout"]) == (None,) * 3

    settings.MARKETLINK = {**settings.MARKETLINK, "PLATFORM_FEE_PERCENT": "50"}
    for user in (vendor.user, staff_user):
        seen = api.get(f"/orders/{booked['id']}/", user=user).json()["data"]
        assert (seen["platform_fee"], seen["vendor_share"]) == ("3.00", "26.99")
        assert seen["payout"] == {"status": "held", "amount": "26.99", "transfer_id": None}
    mine = api.get(f"/orders/{booked['id']}/", user=customer_user).json()["data"]
    assert (mine["platform_fee"], mine["vendor_share"], mine["payout"]) == (None,) * 3


def test_a_vendor_fee_percent_overrides_the_site_s(api, customer_user, payouts_on):
    variant = VariantFactory(
        price="40.00", service__vendor__payouts_ready=True, service__vendor__fee_percent="2.5"
    )
    booked = book(api, customer_user, variant).json()["data"]
    order = RepairOrder.objects.get(pk=booked["id"])
    assert (order.platform_fee, order.vendor_share) == (Decimal("1.00"), Decimal("39.00"))


def test_with_payouts_off_nothing_is_split_and_nothing_is_paid_out(api, customer_user):
    variant = VariantFactory(price="29.99")
    booked = book(api, customer_user, variant).json()["data"]
    seen = api.get(f"/orders/{booked['id']}/", user=variant.service.vendor.user).json()["data"]
    assert (seen["platform_fee"], seen["vendor_share"]) == ("0.00", "29.99")
    assert seen["payout"] == {"status": "none", "amount": None, "transfer_id": None}


def test_a_vendor_who_cannot_be_paid_is_out_of_the_catalogue_and_cannot_be_booked(
    api, customer_user, payouts_on
):
    gated = VariantFactory()
    ready = VariantFactory(service__vendor__payouts_ready=True)

    listed = {s["id"] for s in api.get("/services/").json()["data"]}
    assert listed == {str(ready.service_id)}
    assert api.get(f"/services/{gated.service_id}/").status_code == 404
    answer = book(api, customer_user, gated)
    assert answer.status_code == 409
    assert answer.json()["code"] == "vendor_payouts_not_ready"
    assert not RepairOrder.objects.filter(variant=gated).exists()
    # The vendor still sees and edits their own services.
    own = api.get("/services/my/", user=gated.service.vendor.user).json()["data"]
    assert [s["id"] for s in own] == [str(gated.service_id)]
    assert book(api, customer_user, ready).status_code == 201
