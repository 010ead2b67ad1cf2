"""A vendor sells only while it is switched on, not suspended by staff, and its person exists and
is active; staff suspension is not the vendor's to lift (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest

from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.services import order_place
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.dummy import session_event
from marketlink.payments.models import DummyCheckoutSession
from marketlink.payments.webhooks import webhook_receive
from marketlink.testing.factories import AccountFactory, VariantFactory
from marketlink.vendors import services
from marketlink.vendors.models import VendorProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def variant() -> Any:
    return VariantFactory(stock=3)


def suspend(profile: VendorProfile) -> None:
    assert services.vendors_suspend(VendorProfile.objects.filter(pk=profile.pk)) == 1


def public_answers(api: Any, variant: Any, customer: Any) -> dict[str, int]:
    """What the public and a customer get for the variant's service: every read and the booking."""
    service = variant.service
    listed = api.get("/services/").json()["data"]
    searched = api.get(f"/services/?vendor={service.vendor_id}").json()["data"]
    return {
        "in list": int(any(s["id"] == str(service.id) for s in listed)),
        "in vendor filter": len(searched),
        "detail": api.get(f"/services/{service.id}/").status_code,
        "variants": api.get(f"/services/{service.id}/variants/").status_code,
        "availability": api.get(
            f"/services/variants/{variant.id}/availability/", user=customer
        ).status_code,
        "booking": api.post("/orders/", {"variant_id": str(variant.id)}, user=customer).status_code,
    }


SELLING = {
    "in list": 1,
    "in vendor filter": 1,
    "detail": 200,
    "variants": 200,
    "availability": 200,
    "booking": 201,
}
HIDDEN = {
    "in list": 0,
    "in vendor filter": 0,
    "detail": 404,
    "variants": 404,
    "availability": 404,
    "booking": 404,
}


def test_a_suspended_vendor_sells_nothing_until_staff_lift_it(api, variant, customer_user):
    vendor = variant.service.vendor
    suspend(vendor)

    assert public_answers(api, variant, customer_user) == HIDDEN
    assert not RepairOrder.objects.exists()

    services.vendors_reinstate(VendorProfile.objects.filter(pk=vendor.pk))
    assert public_answers(api, variant, customer_user) == SELLING


def test_the_vendor_cannot_lift_its_own_suspension(api, variant):
    vendor = variant.service.vendor
    suspend(vendor)

    refused = api.patch("/vendors/profile/", {"suspended": False}, user=vendor.user)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [
        {
            "loc": ["body", "suspended"],
            "msg": "suspended is set by the site's staff and cannot be changed here",
        }
    ]
    # Its own switch stays its own, and switching it on changes nothing about the suspension.
    switched = api.patch("/vendors/profile/", {"is_active": True}, user=vendor.user)
    assert switched.status_code == 200
    assert switched.json()["data"]["suspended"] is True
    assert api.get("/vendors/profile/", user=vendor.user).json()["data"]["suspended"] is True
    vendor.refresh_from_db()
    assert vendor.suspended
    assert vendor.suspended_at is not None

    added = api.post("/services/", {"name": "Brakes"}, user=vendor.user)
    assert added.status_code == 403
    assert "suspended" in added.json()["message"]
    assert api.get(f"/services/{variant.service_id}/").status_code == 404


def test_the_published_schema_does_not_offer_suspended_to_vendors(api):
    schema = api.client.get("/api/openapi.json").json()
    body = schema["components"]["schemas"]["VendorProfilePatch"]
    assert "suspended" not in body["properties"]


def test_a_suspension_keeps_its_first_time(variant):
    vendor = variant.service.vendor
    suspend(vendor)
    first = VendorProfile.objects.get(pk=vendor.pk).suspended_at
    assert services.vendors_suspend(VendorProfile.objects.filter(pk=vendor.pk)) == 0
    assert VendorProfile.objects.get(pk=vendor.pk).suspended_at == first


def test_a_vendor_whose_user_is_deactivated_sells_nothing(api, variant, customer_user):
    user = variant.service.vendor.user
    user.is_active = False
    user.save(update_fields=["is_active"])

    assert public_answers(api, variant, customer_user) == HIDDEN


def test_a_paused_vendor_sells_nothing_and_can_resume(api, variant, customer_user):
    vendor = variant.service.vendor
    assert api.patch("/vendors/profile/", {"is_active": False}, user=vendor.user).status_code == 200
    assert public_answers(api, variant, customer_user) == HIDDEN
    assert api.patch("/vendors/profile/", {"is_active": True}, user=vendor.user).status_code == 200
    assert public_answers(api, variant, customer_user) == SELLING


def test_a_pending_order_of_a_suspended_vendor_is_still_paid_when_its_checkout_completes(
    settings, variant
):
    """Decided (docs/decisions.md): orders placed before the suspension run their course."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=variant.id
    )
    checkout_open(order=order, base_url="http://testserver/")
    suspend(variant.service.vendor)

    session = DummyCheckoutSession.objects.get(order=order)
    session.status, session.payment_status = "complete", "paid"
    session.save()
    payload, signature = session_event(session, "checkout.session.completed")
    webhook_receive(payload=payload, signature=signature)

    assert RepairOrder.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_a_host_can_delete_a_vendors_user_and_the_business_history_stays(
    api, variant, customer_user, django_capture_on_commit_callbacks
):
    vendor = variant.service.vendor
    booked = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user)
    assert booked.status_code == 201

    vendor.user.delete()  # the host erases the person, e.g. on request

    vendor.refresh_from_db()
    assert vendor.user is None
    order = RepairOrder.objects.get(pk=booked.json()["data"]["id"])
    assert (order.vendor_id, order.vendor_name) == (vendor.id, vendor.business_name)
    assert api.get(f"/orders/{order.id}/", user=customer_user).status_code == 200
    assert public_answers(api, variant, customer_user) == HIDDEN
