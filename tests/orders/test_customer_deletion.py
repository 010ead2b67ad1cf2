"""A host may delete a customer's user (erasure on request): the orders stay, with their copies
and history, for the vendor's and staff's records, and become no customer's."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from outbox_helpers import drain

from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import orders_expire
from marketlink.orders.transitions import order_transition
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.testing.factories import AccountFactory, UserFactory, VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def orphan(api: Any, customer_user: Any, vendor_user: Any, settings: Any) -> dict[str, Any]:
    """An order whose customer's user the host deleted, and the token that user had."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy", "AUTH_USER_CACHE": 0}
    variant = VariantFactory(stock=3, service__vendor=vendor_user.marketlink_vendor)
    token = tokens_issue(user=customer_user)["access"]
    order = api.post("/orders/", {"variant_id": str(variant.id)}, token=token).json()["data"]
    customer_user.delete()
    return {"order": order, "token": token, "email": order["customer_email"]}


def test_deleting_a_customer_keeps_the_order_its_email_and_history(orphan):
    stored = RepairOrder.objects.get(pk=orphan["order"]["id"])
    assert stored.customer is None
    assert stored.customer_email == orphan["email"]
    assert stored.status == OrderStatus.PENDING


def test_the_expiry_job_still_releases_an_order_without_customer(orphan):
    """Its unit is not held forever: the reservation ends as any other, and is recorded."""
    order_id = orphan["order"]["id"]
    RepairOrder.objects.filter(pk=order_id).update(expires_at=timezone.now())
    assert orders_expire() == 1
    stored = RepairOrder.objects.get(pk=order_id)
    assert stored.status == OrderStatus.CANCELLED
    assert [(h.from_status, h.to_status) for h in stored.history.all()] == [
        ("pending", "cancelled")
    ]
    assert stored.variant.stock == 3


def test_the_deleted_users_token_no_longer_opens_anything(api, orphan):
    order_id = orphan["order"]["id"]
    assert api.get(f"/orders/{order_id}/", token=orphan["token"]).status_code == 401
    assert api.get("/orders/my/", token=orphan["token"]).status_code == 401


def test_an_order_without_customer_is_seen_by_staff_and_its_vendor_only(
    api, orphan, staff_user, vendor_user
):
    order_id = orphan["order"]["id"]
    as_staff = api.get(f"/orders/{order_id}/", user=staff_user)
    assert as_staff.status_code == 200
    assert as_staff.json()["data"]["customer_email"] == orphan["email"]
    vendors_list = api.get("/orders/vendor/", user=vendor_user).json()["data"]
    assert [o["id"] for o in vendors_list] == [order_id]
    stranger = AccountFactory().user
    assert api.get(f"/orders/{order_id}/", user=stranger).status_code == 404
    assert api.get("/orders/my/", user=stranger).json()["data"] == []
    assert api.post(f"/orders/{order_id}/cancel/", user=stranger).status_code == 404


def test_the_admin_shows_an_order_without_customer(orphan):
    admin = UserFactory(is_staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    order_id = orphan["order"]["id"]
    page = browser.get(reverse("admin:marketlink_orders_repairorder_change", args=[order_id]))
    assert page.status_code == 200
    assert orphan["email"] in page.content.decode()
    listing = browser.get(reverse("admin:marketlink_orders_repairorder_changelist"))
    assert listing.status_code == 200


def test_a_paid_order_without_customer_still_gets_its_invoice(orphan, mailoutbox):
    order_id = orphan["order"]["id"]
    order_transition(
        order_id=order_id,
        to=OrderStatus.PAID,
        source=ChangeSource.WEBHOOK,
        payment_intent_id="pi_1",
    )
    drain()
    assert Invoice.objects.get(order_id=order_id).status == InvoiceStatus.SENT
    [mail] = mailoutbox
    assert mail.to == [orphan["email"]]
    assert RepairOrder.objects.get(pk=order_id).status == OrderStatus.PROCESSING
