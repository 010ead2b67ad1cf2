"""Who made each status change: the user behind an API call or an admin action, the operator
behind a ``marketlink`` command, and no one for the provider's events and background tasks."""

from __future__ import annotations

import getpass
import re
from datetime import timedelta
from typing import Any

import pytest
from cli_runner import invoke
from django.urls import reverse
from django.utils import timezone
from order_helpers import refreshed

from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import ChangeSource, OrderStatus, OrderStatusChange, RepairOrder
from marketlink.orders.services import order_place
from marketlink.orders.transitions import order_transition
from marketlink.payments.models import Invoice
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db


def who(order: Any) -> list[tuple[str, str, Any, str]]:
    """The order's changes, oldest first: ``(from, to, actor's pk, operator)``."""
    return list(
        OrderStatusChange.objects.filter(order_id=refreshed(order).pk)
        .order_by("created_at", "id")
        .values_list("from_status", "to_status", "actor", "operator")
    )


def booked(customer: Any, vendor: Any = None, stock: int = 3) -> RepairOrder:
    variant = VariantFactory(stock=stock, **({"service__vendor": vendor} if vendor else {}))
    order, _ = order_place(
        customer=customer, customer_email=customer.email or "c@example.com", variant_id=variant.id
    )
    return order


def paid(order: RepairOrder, to: str = OrderStatus.PAID) -> None:
    """Paid as the provider's event makes it (no person), and moved on as the task does."""
    order_transition(
        order_id=order.pk,
        to=OrderStatus.PAID,
        source=ChangeSource.WEBHOOK,
        payment_intent_id=f"pi_{order.pk.hex}",
        paid_at=timezone.now(),
    )
    if to == OrderStatus.PROCESSING:
        order_transition(order_id=order.pk, to=to, source=ChangeSource.TASK)


def test_a_cancel_through_the_api_names_the_customer(api, customer_user):
    order = booked(customer_user)

    assert api.post(f"/orders/{order.pk}/cancel/", user=customer_user).status_code == 200

    assert who(order) == [("pending", "cancelled", customer_user.pk, "")]


def test_a_vendor_completing_and_refunding_is_named_and_the_provider_is_not(
    api, customer_user, vendor_user, settings
):
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    order = booked(customer_user, vendor=vendor_user.marketlink_vendor)
    paid(order, to=OrderStatus.PROCESSING)

    assert api.post(f"/orders/{order.pk}/complete/", user=vendor_user).status_code == 200
    refund = api.post(f"/orders/{order.pk}/refund/", user=vendor_user)

    assert refund.json()["data"]["status"] == "refunded"
    assert who(order) == [
        ("pending", "paid", None, ""),
        ("paid", "processing", None, ""),
        ("processing", "completed", vendor_user.pk, ""),
        ("completed", "refunded", vendor_user.pk, ""),
    ]


def test_no_person_carries_over_to_work_after_a_request(api, customer_user):
    """Each request leaves its scope, answered or refused: what runs next in the same thread
    (a task, a webhook) names no one."""
    cancelled, pending = booked(customer_user), booked(customer_user)
    api.post(f"/orders/{cancelled.pk}/cancel/", user=customer_user)
    refused = api.post(f"/orders/{cancelled.pk}/cancel/", user=customer_user)
    assert refused.status_code == 409

    order_transition(order_id=pending.pk, to=OrderStatus.CANCELLED, source=ChangeSource.TASK)

    assert who(pending) == [("pending", "cancelled", None, "")]


def test_a_booking_that_reclaims_anothers_lapsed_reservation_does_not_name_the_booker(
    api, customer_user
):
    """The lapsed order is cancelled on the spot, but it is not the booker who cancels it."""
    first = AccountFactory().user
    lapsed = booked(first, stock=1)
    RepairOrder.objects.filter(pk=lapsed.pk).update(expires_at=timezone.now() - timedelta(1))

    answer = api.post("/orders/", {"variant_id": str(lapsed.variant_id)}, user=customer_user)

    assert answer.status_code == 201
    assert who(lapsed) == [("pending", "cancelled", None, "")]


# Transactional: the admin's send runs once its decision commits, in the staff user's scope.
# No drainer runs by itself (the queue is not run), so the admin's send is what moves it.
@pytest.mark.django_db(transaction=True)
def test_an_admin_action_names_the_staff_user(
    admin_client, admin_user, customer_user, tasks_queued
):
    order = booked(customer_user)
    paid(order)
    invoice = Invoice.objects.create(order=order, number="ML-ADMIN-1")

    answer = admin_client.post(
        reverse("admin:marketlink_payments_invoice_changelist"),
        {"action": "send_again", "_selected_action": [str(invoice.pk)]},
    )

    assert answer.status_code == 302
    assert who(order)[-1] == ("paid", "processing", admin_user.pk, "")


def test_deleting_the_user_keeps_the_history_without_them(api, customer_user):
    order = booked(customer_user)
    api.post(f"/orders/{order.pk}/cancel/", user=customer_user)

    customer_user.delete()

    assert who(order) == [("pending", "cancelled", None, "")]
    assert refreshed(order).status == OrderStatus.CANCELLED


def test_a_user_deleted_while_their_token_still_works_is_not_named(
    api, customer_user, staff_user, settings
):
    """A process reuses a token's user for ``AUTH_USER_CACHE`` seconds: a change made in that
    window by a user deleted meanwhile is made, and names no one rather than a user that is
    gone."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy", "AUTH_USER_CACHE": 60}
    order = booked(customer_user)
    paid(order)
    token = tokens_issue(user=staff_user)["access"]
    assert api.get(f"/orders/{order.pk}/", token=token).status_code == 200

    staff_user.delete()
    refund = api.post(f"/orders/{order.pk}/refund/", token=token)

    assert refund.json()["data"]["status"] == "refunded"
    assert who(order)[-1] == ("paid", "refunded", None, "")


def test_the_order_page_shows_who_made_each_change(admin_client, customer_user, api):
    order = booked(customer_user)
    api.post(f"/orders/{order.pk}/cancel/", user=customer_user)
    OrderStatusChange.objects.create(
        order=order, from_status="cancelled", to_status="paid", source="cli", operator="ops@x.io"
    )

    page = admin_client.get(reverse("admin:marketlink_orders_repairorder_change", args=[order.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert '<th class="column-actor">Actor' in text
    assert '<th class="column-operator">Operator' in text
    assert column(text, "actor") == [str(customer_user), "-"]
    assert column(text, "operator") == ["-", "ops@x.io"]


def column(page: str, name: str) -> list[str]:
    """The text of each history row's cell in column ``name`` of the admin's inline."""
    cells = re.findall(rf'<td class="field-{name}">(.*?)</td>', page, flags=re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]


def lapsed_order() -> RepairOrder:
    order = booked(AccountFactory().user)
    RepairOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(1))
    return order


def test_a_command_run_as_someone_names_them():
    order = lapsed_order()

    result = invoke("orders", "expire", "--as", "ops@example.com")

    assert result.exit_code == 0, result.output
    assert who(order) == [("pending", "cancelled", None, "ops@example.com")]


def test_a_command_run_without_as_names_the_account_running_it():
    order = lapsed_order()

    assert invoke("orders", "expire").exit_code == 0

    assert who(order) == [("pending", "cancelled", None, getpass.getuser())]


def test_an_account_without_a_name_is_named_by_its_uid(monkeypatch):
    """A container's user may have no name in the environment nor in the password database:
    the command still runs, and says which account ran it."""
    import os

    def nameless() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", nameless)
    order = lapsed_order()

    assert invoke("orders", "expire").exit_code == 0

    assert who(order) == [("pending", "cancelled", None, f"uid {os.getuid()}")]


@pytest.mark.parametrize("value", ["", "   ", "ops@example.com\nroot", "x" * 255])
def test_an_operator_that_is_not_one_line_is_a_usage_error(value):
    order = lapsed_order()

    result = invoke("orders", "expire", "--as", value)

    assert result.exit_code == 2
    assert "--as" in result.stderr
    assert refreshed(order).status == OrderStatus.PENDING


@pytest.mark.django_db(transaction=True)
def test_an_invoice_resent_from_the_command_line_names_the_operator(tasks_run_inline):
    """With tasks inline (Huey's immediate mode) the task runs within the command, as soon as
    its enqueue commits, and names its operator; under a consumer it would name no one."""
    order = booked(AccountFactory().user)
    # Paid, and its invoice task lost (the queue flushed).
    RepairOrder.objects.filter(pk=order.pk).update(status="paid", paid_at=timezone.now())

    result = invoke("invoices", "resend", str(order.pk), "--as", "ops@example.com")

    assert result.exit_code == 0, result.output
    assert who(order) == [("paid", "processing", None, "ops@example.com")]


@pytest.mark.parametrize(
    "command", [["reconcile"], ["orders", "expire"], ["invoices", "resend"], ["webhooks", "replay"]]
)
def test_every_command_that_changes_orders_takes_as(command):
    result = invoke(*command, "--help")

    assert result.exit_code == 0
    assert "--as" in result.output
