"""Marketplace ADMIN is what the host's staff flags say now, not what they said once.

The staff user here is made by the host (as ``createsuperuser`` or the host's admin would), so
marketlink first meets it through its token, the way the ADMIN role used to get stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from marketlink.accounts.models import Account, Role
from marketlink.orders.models import RepairOrder
from marketlink.testing.factories import UserFactory, VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_user_cache(settings: Any) -> Iterator[None]:
    """The dummy gateway, tasks in-process, and every request reads the user afresh."""
    from huey.contrib.djhuey import HUEY

    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy", "AUTH_USER_CACHE": 0}
    was = HUEY.immediate
    HUEY.immediate = True
    yield
    HUEY.immediate = was


def paid_order(api: Any, customer: Any, on_commit: Any) -> str:
    """Book one unit and pay for it on the dummy gateway's page, as the customer's browser would."""
    booked = api.post("/orders/", {"variant_id": str(VariantFactory(stock=3).id)}, user=customer)
    assert booked.status_code == 201, booked.json()
    order = booked.json()["data"]
    browser = Client()
    checkout = browser.get(order["payment_url"])
    assert checkout.status_code == 303
    with on_commit(execute=True):
        assert browser.post(checkout["Location"], {"action": "pay"}).status_code == 303
    assert RepairOrder.objects.get(pk=order["id"]).status in {"paid", "processing"}
    return str(order["id"])


def test_staff_lose_admin_access_when_they_lose_staff_status(
    api, customer_user, django_capture_on_commit_callbacks
):
    staff = UserFactory(is_staff=True)
    viewed = paid_order(api, customer_user, django_capture_on_commit_callbacks)
    refunded = paid_order(api, customer_user, django_capture_on_commit_callbacks)
    to_refund_later = paid_order(api, customer_user, django_capture_on_commit_callbacks)
    token = api.post("/users/login/", {"email": staff.email, "password": "correct-horse-battery"})
    access = token.json()["data"]["tokens"]["access"]

    assert api.get(f"/orders/{viewed}/", token=access).status_code == 200
    assert api.post(f"/orders/{refunded}/refund/", token=access).status_code == 200
    assert api.get("/users/profile/", token=access).json()["data"]["role"] == "ADMIN"

    staff.is_staff = False
    staff.save(update_fields=["is_staff"])

    assert api.get(f"/orders/{viewed}/", token=access).status_code == 404
    refund = api.post(f"/orders/{to_refund_later}/refund/", token=access)
    assert refund.status_code == 403
    assert refund.json()["success"] is False
    assert RepairOrder.objects.get(pk=to_refund_later).status != "refunded"
    assert api.get("/users/profile/", token=access).json()["data"]["role"] == "CUSTOMER"


def test_a_host_made_staff_user_is_stored_as_a_customer(api):
    staff = UserFactory(is_staff=True, is_superuser=True)
    assert api.get("/users/profile/", user=staff).json()["data"]["role"] == "ADMIN"
    assert Account.objects.get(user=staff).role == Role.CUSTOMER


def test_staff_lose_admin_within_the_user_cache_time(api, settings, customer_user):
    import time

    settings.MARKETLINK = {"AUTH_USER_CACHE": 0.3}
    staff = UserFactory(is_staff=True)
    booked = api.post("/orders/", {"variant_id": str(VariantFactory().id)}, user=customer_user)
    order_id = booked.json()["data"]["id"]
    access = api.post(
        "/users/login/", {"email": staff.email, "password": "correct-horse-battery"}
    ).json()["data"]["tokens"]["access"]
    assert api.get(f"/orders/{order_id}/", token=access).status_code == 200
    staff.is_staff = False
    staff.save(update_fields=["is_staff"])
    time.sleep(0.35)
    assert api.get(f"/orders/{order_id}/", token=access).status_code == 404


def test_staff_book_nothing(api):
    staff = UserFactory(is_staff=True)
    variant = VariantFactory(stock=2)
    response = api.post("/orders/", {"variant_id": str(variant.id)}, user=staff)
    assert response.status_code == 403, response.content
    assert response.json()["message"] == "Only customers can do this."
    assert not RepairOrder.objects.exists()
