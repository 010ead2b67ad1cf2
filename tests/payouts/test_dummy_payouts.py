"""The dummy gateway pays vendors out end to end, as the demo shows: onboarded on its own page,
paid on its checkout page, the order completed, its transfer on the vendor's dashboard; then
refunded and taken back."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from payout_helpers import dummy_onboarded, ledger_sum

from marketlink.outbox.drainer import drain
from marketlink.payments.models import DummyTransfer
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payouts_on", "tasks_run_inline")]


def test_a_vendor_is_paid_out_and_sees_the_transfer(api, django_capture_on_commit_callbacks):
    vendor = VendorProfileFactory()
    dummy_onboarded(api, vendor)
    customer = AccountFactory().user
    variant = VariantFactory(service__vendor=vendor, price="50.00")
    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        order = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer).json()["data"]
        checkout = browser.get(order["payment_url"])["Location"]
        assert browser.post(urlsplit(checkout).path, {"action": "pay"}).status_code == 303
    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/orders/{order['id']}/complete/", user=vendor.user)
    drain()

    (transfer,) = DummyTransfer.objects.all()
    assert (transfer.amount_minor, transfer.order_ref) == (4500, order["id"])
    dashboard = api.post("/vendors/payouts/dashboard/", user=vendor.user).json()["data"]["url"]
    assert transfer.id in browser.get(urlsplit(dashboard).path).content.decode()
    entries = api.get("/vendors/payouts/entries/", user=vendor.user).json()["data"]
    assert next((e["kind"], e["amount"]) for e in entries) == ("transfer", "-45.00")
    assert {(e["kind"], e["amount"]) for e in entries} == {
        ("sale", "50.00"),
        ("platform_fee", "-5.00"),
        ("transfer", "-45.00"),
    }

    with django_capture_on_commit_callbacks(execute=True):
        api.post(f"/orders/{order['id']}/refund/", user=vendor.user)
    drain()
    transfer.refresh_from_db()
    assert transfer.amount_reversed_minor == 4500
    assert ledger_sum(vendor) == 0
