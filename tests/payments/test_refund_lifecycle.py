"""Money going back, followed to the end: refunds that are pending, fail or cannot be made,
disputes, checkouts closed when a reservation lapses, and what a refund does to capacity.

Through the real ``stripe`` SDK and the local Stripe stand-in, with its events delivered to the
webhook as the test chooses (see ``stripe_shop``).
"""

from __future__ import annotations

from typing import Any

import pytest
from stripe_shop import Shop, history, lapse, status_of, stock_of

from marketlink.orders.models import RepairOrder
from marketlink.orders.services import orders_expire
from marketlink.orders.signals import (
    order_cancelled,
    order_disputed,
    order_paid,
    order_placed,
    order_refunded,
)
from marketlink.payments.models import Dispute, Refund
from marketlink.testing.factories import AccountFactory, VariantFactory
from marketlink.testing.stripe_server import StandInError

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


def paid_order(shop: Shop, customer: Any, variant: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    order, session_id = shop.opened(customer, variant)
    intent = shop.standin.pay(session_id)
    shop.deliver_new()
    assert status_of(order) == "processing"
    return order, intent


def refund(api: Any, order: dict[str, Any], user: Any) -> Any:
    return api.post(f"/orders/{order['id']}/refund/", user=user)


def test_a_pending_refund_leaves_the_order_paid_until_it_succeeds(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    standin.refund_status = "pending"

    response = refund(api, order, staff_user)

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "processing"
    assert "requested" in response.json()["message"]
    assert shop.deliver_new() == [("charge.refunded", 200), ("refund.created", 200)]
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    # Asking again while it is pending asks the provider nothing more.
    assert refund(api, order, staff_user).status_code == 200
    assert len(standin.refunds) == 1

    [pending] = standin.refunds
    standin.settle_refund(pending, "succeeded")
    assert {status for _, status in shop.deliver_new()} == {200}

    assert status_of(order) == "refunded"
    assert stock_of(variant) == 5
    assert RepairOrder.objects.get(pk=order["id"]).refund_id == pending
    assert Refund.objects.get().status == "succeeded"


def test_a_failed_refund_leaves_the_order_paid_and_flagged_and_can_be_asked_again(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    standin.refund_status = "pending"
    refund(api, order, staff_user)
    [first] = standin.refunds
    standin.settle_refund(first, "failed")
    assert {status for _, status in shop.deliver_new()} == {200}

    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    flagged = Refund.objects.get()
    assert (flagged.status, flagged.needs_attention) == ("failed", True)

    standin.refund_status = "succeeded"
    assert refund(api, order, staff_user).json()["data"]["status"] == "refunded"
    assert len(standin.refunds) == 2  # a new refund, not the failed one's answer replayed
    # One row each; the failed one's flag is answered by the refund that made it whole.
    assert sorted(Refund.objects.values_list("status", "needs_attention")) == [
        ("failed", False),
        ("succeeded", False),
    ]
    assert stock_of(variant) == 5


def test_refunding_a_completed_order_gives_money_back_but_not_the_used_unit(
    shop, standin, api, customer_user, vendor_user
):
    variant = VariantFactory(stock=5, service__vendor=vendor_user.marketlink_vendor)
    order, _ = paid_order(shop, customer_user, variant)
    assert api.post(f"/orders/{order['id']}/complete/", user=vendor_user).status_code == 200
    assert stock_of(variant) == 4

    assert refund(api, order, vendor_user).json()["data"]["status"] == "refunded"

    assert stock_of(variant) == 4
    assert history(order)[-1] == ("completed", "refunded", "api")


def test_a_dispute_flags_the_order_and_a_lost_one_is_recorded(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, intent = paid_order(shop, customer_user, variant)
    heard: list[str] = []

    def hear(sender: Any, dispute: Dispute, **kwargs: Any) -> None:
        heard.append(dispute.outcome)

    order_disputed.connect(hear)
    try:
        opened = standin.dispute(intent["id"])
        assert shop.deliver_new() == [("charge.dispute.created", 200)]
        dispute = Dispute.objects.get()
        assert (dispute.outcome, dispute.needs_attention) == ("open", True)
        assert str(dispute.order_id) == order["id"]
        assert (dispute.amount_minor, dispute.reason) == (2999, "fraudulent")

        standin.close_dispute(opened["id"], won=False)
        assert shop.deliver_new() == [("charge.dispute.closed", 200)]
    finally:
        order_disputed.disconnect(hear)

    dispute.refresh_from_db()
    assert (dispute.outcome, dispute.needs_attention) == ("lost", True)
    assert dispute.closed_at is not None
    assert status_of(order) == "processing"
    assert heard == ["open", "lost"]


def test_a_lapsed_reservation_closes_its_checkout(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)

    with shop.on_commit(execute=True):
        assert orders_expire() == 1

    assert standin.sessions[session_id]["status"] == "expired"
    with pytest.raises(StandInError):
        standin.pay(session_id)
    assert stock_of(variant) == 5


def test_a_reservation_reclaimed_at_booking_closes_its_checkout(shop, standin, customer_user):
    """The last unit's reservation lapsed and the expiry job has not run: the next booking
    takes the unit back, and the first customer's checkout can no longer be paid."""
    variant = VariantFactory(stock=1)
    first, session_id = shop.opened(customer_user, variant)
    lapse(first)

    with shop.on_commit(execute=True):
        shop.book(AccountFactory().user, variant)

    assert status_of(first) == "cancelled"
    assert standin.sessions[session_id]["status"] == "expired"


def test_host_sites_hear_of_each_order_change_once_committed(
    shop, standin, api, customer_user, staff_user
):
    heard: list[tuple[str, str]] = []
    signals = {
        "placed": order_placed,
        "paid": order_paid,
        "cancelled": order_cancelled,
        "refunded": order_refunded,
    }

    def listener(name: str) -> Any:
        def hear(sender: Any, order: RepairOrder, **kwargs: Any) -> None:
            heard.append((name, order.status))

        return hear

    receivers = {name: listener(name) for name in signals}
    for name, signal in signals.items():
        signal.connect(receivers[name])
    try:
        variant = VariantFactory(stock=5)
        with shop.on_commit(execute=True):
            cancelled = shop.book(customer_user, variant)
        with shop.on_commit(execute=True):
            api.post(f"/orders/{cancelled['id']}/cancel/", user=customer_user)
        with shop.on_commit(execute=True):
            order = shop.book(customer_user, variant)
        assert shop.open_link(order).status_code == 303
        standin.pay(shop.session_id(order))
        shop.deliver_new()
        with shop.on_commit(execute=True):
            refund(api, order, staff_user)
    finally:
        for name, signal in signals.items():
            signal.disconnect(receivers[name])

    assert heard == [
        ("placed", "pending"),
        ("cancelled", "cancelled"),
        ("placed", "pending"),
        ("paid", "paid"),
        ("refunded", "refunded"),
    ]
