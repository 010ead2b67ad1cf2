"""A vendor's payout account: made once on the first onboarding request, onboarded at the
provider's hosted page, kept current by the Connect events (late, twice, out of order) and by
the vendor's payout page; its state opens and closes the vendor's bookings."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from django.test import Client
from payout_helpers import connect_events, deliver_connect
from threads import race

from marketlink.payments.models import PaymentEvent
from marketlink.payouts.models import ConnectedAccount
from marketlink.testing.factories import VariantFactory, VendorProfileFactory
from marketlink.vendors.models import VendorProfile

pytestmark = pytest.mark.django_db


def bookable(api, customer_user, vendor) -> int:
    variant = VariantFactory(service__vendor=vendor)
    return api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).status_code


def ready(vendor) -> bool:
    return VendorProfile.objects.get(pk=vendor.pk).payouts_ready


@pytest.mark.usefixtures("payouts_on")
def test_on_the_dummy_gateway_a_vendor_onboards_on_its_page_and_can_be_booked(api, customer_user):
    vendor = VendorProfileFactory()
    assert bookable(api, customer_user, vendor) == 409
    link = api.post("/vendors/payouts/onboarding/", user=vendor.user).json()["data"]
    browser = Client()
    page = browser.get(urlsplit(link["url"]).path)
    assert b"Finish onboarding" in page.content

    finished = browser.post(urlsplit(link["url"]).path, {"action": "finish"})

    assert finished.status_code == 303
    back = browser.get(urlsplit(finished["Location"]).path).json()
    assert back["data"]["ready"] is True
    assert ready(vendor)
    event = PaymentEvent.objects.get(event_type="account.updated")
    assert (event.status, event.account) == ("processed", vendor.connected_account.account_id)
    seen = api.get("/vendors/payouts/", user=vendor.user).json()["data"]
    assert seen["account"]["ready"] is True
    assert seen["balance"] == {
        "currency": "usd",
        "held": "0.00",
        "released": "0.00",
        "reversed": "0.00",
        "debt": "0.00",
    }
    dashboard = api.post("/vendors/payouts/dashboard/", user=vendor.user).json()["data"]["url"]
    assert b"None yet" in browser.get(urlsplit(dashboard).path).content
    assert bookable(api, customer_user, vendor) == 201


def test_on_stripe_the_account_is_made_once_and_events_keep_the_gate_current(
    api, customer_user, connect_standin
):
    vendor = VendorProfileFactory()
    first = api.post("/vendors/payouts/onboarding/", user=vendor.user).json()["data"]
    again = api.post("/vendors/payouts/onboarding/", user=vendor.user).json()["data"]
    assert first["url"] != again["url"]  # a link is single use: a new one each time
    assert len(connect_standin.accounts) == ConnectedAccount.objects.count() == 1
    assert api.post("/vendors/payouts/dashboard/", user=vendor.user).json()["code"] == (
        "payouts_onboarding_incomplete"
    )
    account_id = vendor.connected_account.account_id
    seen = api.get("/vendors/payouts/", user=vendor.user).json()["data"]["account"]
    assert seen["id"] == account_id
    assert seen["ready"] is False
    assert len(seen["requirements_due"]) == len(set(seen["requirements_due"])) > 0

    connect_standin.finish_onboarding(account_id)
    events = connect_events(connect_standin, account_id)
    for event in [*reversed(events), *events]:  # late, twice, out of order
        assert deliver_connect(connect_standin, event).status_code == 200
    assert ready(vendor)
    assert bookable(api, customer_user, vendor) == 201

    connect_standin.set_payouts_enabled(account_id, False)  # a bank problem
    for event in connect_events(connect_standin, account_id)[len(events) :]:
        deliver_connect(connect_standin, event)
    assert not ready(vendor)
    assert bookable(api, customer_user, vendor) == 409

    connect_standin.set_payouts_enabled(account_id, True)
    api.get("/vendors/payouts/", user=vendor.user)  # no event needed: the page reads again
    assert ready(vendor)

    connect_standin.deauthorize(account_id)
    deliver_connect(connect_standin, connect_events(connect_standin, account_id)[-1])
    account = ConnectedAccount.objects.get(account_id=account_id)
    assert (account.deauthorized, account.needs_attention, ready(vendor)) == (True, True, False)


def test_an_account_in_another_country_is_a_recipient(api, connect_standin, settings):
    settings.MARKETLINK = {**settings.MARKETLINK, "CONNECT_COUNTRY": "GB"}
    vendor = VendorProfileFactory()
    api.post("/vendors/payouts/onboarding/", user=vendor.user)
    (account,) = connect_standin.accounts.values()
    assert account["country"] == "GB"
    assert account["tos_acceptance"]["service_agreement"] == "recipient"


def test_with_payouts_off_the_vendor_endpoints_are_404(api, vendor_user):
    for method, path in [
        ("post", "/vendors/payouts/onboarding/"),
        ("get", "/vendors/payouts/"),
        ("get", "/vendors/payouts/entries/"),
        ("post", "/vendors/payouts/dashboard/"),
    ]:
        answer = getattr(api, method)(path, user=vendor_user)
        assert answer.status_code == 404
        assert answer.json()["success"] is False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_requests_make_one_account(api, connect_standin):
    vendor = VendorProfileFactory()
    answers = race(
        *[lambda: api.post("/vendors/payouts/onboarding/", user=vendor.user) for _ in range(4)]
    )
    assert [answer.status_code for answer in answers] == [200] * 4
    assert len(connect_standin.accounts) == ConnectedAccount.objects.count() == 1
