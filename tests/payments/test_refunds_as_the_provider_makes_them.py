"""Refunds as Stripe makes them: several per payment, partial ones, each settled only by its own
events, pending dashboard refunds, refunds in another currency, late payments being given back,
and disputes closed for good.

Through the real ``stripe`` SDK and the local Stripe stand-in, its events delivered to the
webhook when the test says so (see ``stripe_shop``).
"""

from __future__ import annotations

import copy
import secrets
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from outbox_helpers import drain
from stripe_shop import Shop, history, lapse, status_of, stock_of

from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_cancel, orders_expire
from marketlink.outbox.models import OutboxEntry
from marketlink.payments.gateways.base import CheckoutRequest, RefundRequest
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payments.models import Dispute, Invoice, PaymentEvent, Refund
from marketlink.payments.refunds import refund_ask
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


def paid_order(shop: Shop, customer: Any, variant: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    order, session_id = shop.opened(customer, variant)
    intent = shop.standin.pay(session_id)
    shop.deliver_new()
    assert status_of(order) == "processing"
    return order, intent


def refund_through_api(api: Any, order: dict[str, Any], user: Any) -> Any:
    return api.post(f"/orders/{order['id']}/refund/", user=user)


def rows() -> list[tuple[str, str, int, bool]]:
    """Every refund row: (kind, status, amount, flagged), oldest first."""
    ordered = Refund.objects.order_by("created_at")
    return list(ordered.values_list("kind", "status", "amount_minor", "needs_attention"))


def late_copy(event: dict[str, Any]) -> dict[str, Any]:
    """The same news delivered again under an event id of its own (Stripe sends a refund's
    updates as separate events, and they may arrive in any order)."""
    again = copy.deepcopy(event)
    again["id"] = f"evt_late_{secrets.token_hex(6)}"
    return again


# --- One row per refund; partial refunds ------------------------------------------------------


def test_a_partial_dashboard_refund_after_a_failed_refund_leaves_the_order_paid_and_flagged(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, intent = paid_order(shop, customer_user, variant)
    standin.refund_status = "pending"
    refund_through_api(api, order, staff_user)
    [first] = standin.refunds
    standin.settle_refund(first, "failed")
    shop.deliver_new()
    standin.refund_status = "succeeded"

    standin.refund(intent["id"], 100)  # staff give back 1.00 in Stripe's dashboard
    assert {status for _, status in shop.deliver_new()} == {200}

    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    assert rows() == [("order", "failed", 2999, True), ("external", "succeeded", 100, True)]
    answer = api.get(f"/orders/{order['id']}/", user=customer_user).json()["data"]
    assert (answer["status"], answer["amount_refunded"]) == ("processing", "1.00")
    assert "partial refund" in Refund.objects.get(kind="external").last_error

    # A refund through marketlink now asks for what is left, and that makes it whole.
    response = refund_through_api(api, order, staff_user)
    assert response.json()["data"]["status"] == "refunded"
    assert response.json()["data"]["amount_refunded"] == "29.99"
    assert sorted(r["amount"] for r in standin.refunds.values()) == [100, 2899, 2999]
    assert stock_of(variant) == 5
    assert not Refund.objects.filter(needs_attention=True).exists()


def test_a_late_event_of_an_earlier_refund_never_overwrites_a_later_one(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    standin.refund_status = "pending"
    refund_through_api(api, order, staff_user)
    [first] = standin.refunds
    standin.settle_refund(first, "failed")
    shop.deliver_new()
    standin.refund_status = "succeeded"
    assert refund_through_api(api, order, staff_user).json()["data"]["status"] == "refunded"
    shop.deliver_new()
    before = rows()

    [news_of_first] = [
        event
        for event in standin.events
        if event["type"] == "refund.created" and event["data"]["object"]["id"] == first
    ]
    assert shop.deliver(late_copy(news_of_first)).status_code == 200

    assert (
        rows() == before == [("order", "failed", 2999, False), ("order", "succeeded", 2999, False)]
    )
    assert status_of(order) == "refunded"
    assert stock_of(variant) == 5


def test_a_refund_event_before_its_requests_answer_finds_the_row_written_before_asking(
    shop, standin, customer_user, django_capture_on_commit_callbacks
):
    """marketlink wrote its refund's row (a late payment's, to give back) and asked; the
    provider made the refund, and its ``refund.created`` arrives before the answer was saved.
    The event finds the row by the reference sent with the request; the answer, saved later (or
    asking again under the same key), is the same refund, never a second one."""
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    orders_expire()
    shop.book(AccountFactory().user, variant)  # takes the last unit
    standin.pay(session_id)
    for event in shop.undelivered("checkout.session.completed"):
        shop.deliver(event, run_on_commit=False)  # the refund is decided; its ask not yet sent
    [row] = Refund.objects.all()
    assert (row.status, row.provider_refund_id) == ("requested", None)

    made = StripeGateway().refund(request_of(row))  # the ask, its answer not yet saved
    assert shop.deliver_new("refund.created") == [("refund.created", 200)]
    row.refresh_from_db()
    assert (row.kind, row.status, row.provider_refund_id) == ("late", "succeeded", made.id)

    with django_capture_on_commit_callbacks(execute=True):
        refund_ask(refund=row, source="task")  # the same ask again: the same refund
    assert list(standin.refunds) == [made.id]
    assert rows() == [("late", "succeeded", 2999, False)]
    assert status_of(order) == "cancelled"


def request_of(row: Refund) -> RefundRequest:
    return RefundRequest(
        payment_intent_id=row.payment_intent_id,
        amount_minor=row.amount_minor,
        idempotency_key=row.idempotency_key,
        reference=str(row.pk),
        order_id=str(row.order_id),
    )


def test_a_succeeded_refund_later_reported_failed_is_flagged_and_the_order_stays_refunded(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    refund_through_api(api, order, staff_user)
    shop.deliver_new()
    [made] = standin.refunds

    standin.settle_refund(made, "failed")  # Stripe allows it: the card was closed, say
    assert {status for _, status in shop.deliver_new()} == {200}

    assert status_of(order) == "refunded"
    assert stock_of(variant) == 5
    [row] = Refund.objects.all()
    assert (row.status, row.needs_attention) == ("failed", True)
    assert "after it had succeeded" in row.last_error
    assert RepairOrder.objects.get(pk=order["id"]).amount_refunded == Decimal("0.00")


def test_every_order_answer_says_how_much_was_refunded(api, shop, customer_user, vendor_user):
    variant = VariantFactory(stock=5, service__vendor=vendor_user.marketlink_vendor)
    order = shop.book(customer_user, variant)
    assert order["amount_refunded"] == "0.00"
    for path, user in (("/orders/my/", customer_user), ("/orders/vendor/", vendor_user)):
        [listed] = api.get(path, user=user).json()["data"]
        assert listed["amount_refunded"] == "0.00"


# --- A pending dashboard refund is not final ---------------------------------------------------


def test_a_pending_dashboard_refund_leaves_the_order_paid_until_it_settles(
    shop, standin, customer_user
):
    variant = VariantFactory(stock=5)
    order, intent = paid_order(shop, customer_user, variant)
    standin.refund_status = "pending"
    [made] = [standin.refund(intent["id"])["id"]]

    assert shop.deliver_new("charge.refunded") == [("charge.refunded", 200)]
    assert status_of(order) == "processing"
    assert rows() == [("external", "pending", 2999, False)]

    standin.settle_refund(made, "failed")
    assert {status for _, status in shop.deliver_new()} == {200}
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    assert rows() == [("external", "failed", 2999, True)]


def test_a_refunded_charge_with_the_provider_down_is_answered_503_and_processed_when_retried(
    shop, standin, customer_user
):
    order, intent = paid_order(shop, customer_user, VariantFactory(stock=5))
    standin.refund(intent["id"])
    [charge_refunded] = shop.undelivered("charge.refunded")
    standin.down = True
    assert shop.deliver(charge_refunded).status_code == 503
    stored = PaymentEvent.objects.get(event_id=charge_refunded["id"])
    assert stored.status == "failed"
    assert stored.last_error.startswith("transient")
    assert status_of(order) == "processing"

    standin.down = False
    assert shop.deliver(charge_refunded).status_code == 200
    assert status_of(order) == "refunded"


def test_a_payment_refunded_in_more_than_ten_parts_is_refunded_when_they_reach_its_total(
    shop, standin, api, customer_user
):
    """Stripe shows a charge's refunds 10 at a time: the eleventh and later must count too."""
    variant = VariantFactory(stock=5)
    order, intent = paid_order(shop, customer_user, variant)
    parts = [250] * 11 + [249]  # 29.99 given back in 12 parts, in Stripe's dashboard
    for amount in parts:
        standin.refund(intent["id"], amount)
    # Only the last refunded charge's event arrives (the others were lost, or come later).
    *_, last = shop.undelivered("charge.refunded")
    assert last["data"]["object"]["amount_refunded"] == sum(parts) == 2999

    assert shop.deliver(last).status_code == 200

    assert PaymentEvent.objects.get(event_id=last["id"]).status == "processed"
    answer = api.get(f"/orders/{order['id']}/", user=customer_user).json()["data"]
    assert (answer["status"], answer["amount_refunded"]) == ("refunded", "29.99")
    assert sorted(amount for _, _, amount, _ in rows()) == sorted(parts)
    assert {(kind, status) for kind, status, _, _ in rows()} == {("external", "succeeded")}
    assert stock_of(variant) == 5


def test_every_refund_of_a_payment_is_read_a_hundred_per_call(shop, standin, customer_user):
    _, intent = paid_order(shop, customer_user, VariantFactory(stock=5))
    made = [standin.refund(intent["id"], 1)["id"] for _ in range(101)]
    asked_before = len(standin.requests_log)

    listed = StripeGateway().fetch_refunds(intent["id"])

    assert [refund.id for refund in listed] == made[::-1]  # newest first
    asked = standin.requests_log[asked_before:]
    assert [(r.method, r.path, r.params["limit"]) for r in asked] == [
        ("GET", "/v1/refunds", "100")
    ] * 2
    assert asked[1].params["starting_after"] == made[1]


# --- Currency -----------------------------------------------------------------------------------


def test_a_refund_in_another_currency_is_flagged_and_changes_nothing(
    shop, standin, customer_user, mailoutbox
):
    """A payment in EUR for a USD order is flagged as a mismatch; staff refund it in the
    dashboard. The refund must not take the order to paid, then refunded, nor send an invoice."""
    variant = VariantFactory(stock=5)
    order = shop.book(customer_user, variant)
    euros = StripeGateway().create_checkout(
        CheckoutRequest(
            order_id=order["id"],
            amount_minor=2999,
            currency="eur",
            description="in euros",
            customer_email=order["customer_email"],
            expires_at=RepairOrder.objects.get(pk=order["id"]).expires_at,
            success_url="https://shop.example/ok",
            cancel_url="https://shop.example/no",
            idempotency_key="euros",
        )
    )
    intent = standin.pay(euros.id)
    shop.deliver_new()
    assert PaymentEvent.objects.filter(needs_attention=True).count() == 2  # the mismatch
    standin.refund(intent["id"])

    assert {status for _, status in shop.deliver_new()} == {200}

    assert status_of(order) == "pending"
    assert not Refund.objects.exists()
    assert mailoutbox == []
    assert not Invoice.objects.exists()
    flagged = PaymentEvent.objects.filter(needs_attention=True, event_type="charge.refunded")
    assert "is in eur" in flagged.get().last_error


# --- A late payment being given back ------------------------------------------------------------


def test_a_late_payment_whose_refund_is_under_way_never_takes_a_unit_again(
    shop, standin, customer_user
):
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    assert orders_expire() == 1
    other = shop.book(AccountFactory().user, variant)  # takes the last unit
    standin.refund_status = "pending"  # the late payment's refund takes its time
    standin.pay(session_id)
    assert shop.deliver_new("checkout.session.completed") == [("checkout.session.completed", 200)]
    assert rows() == [("late", "pending", 2999, False)]

    order_cancel(order=RepairOrder.objects.get(pk=other["id"]))  # a unit frees up
    assert stock_of(variant) == 1
    assert shop.deliver_new("payment_intent.succeeded") == [("payment_intent.succeeded", 200)]

    assert status_of(order) == "cancelled"
    assert stock_of(variant) == 1
    assert history(order) == [("pending", "cancelled", "task")]
    assert not Invoice.objects.exists()


# --- Disputes -----------------------------------------------------------------------------------


def test_dispute_events_out_of_order_never_reopen_a_lost_dispute(shop, standin, customer_user):
    order, intent = paid_order(shop, customer_user, VariantFactory(stock=5))
    dispute = standin.dispute(intent["id"])
    standin.close_dispute(dispute["id"], won=False)
    created, closed = shop.undelivered("charge.dispute.created", "charge.dispute.closed")

    assert shop.deliver(closed).status_code == 200
    assert shop.deliver(created).status_code == 200  # late

    row = Dispute.objects.get()
    assert (row.outcome, row.needs_attention) == ("lost", True)
    assert row.closed_at is not None
    assert status_of(order) == "processing"


@pytest.mark.parametrize("final", ["won", "warning_closed", "prevented"])
def test_a_dispute_closed_in_the_sellers_favour_is_kept(shop, standin, customer_user, final):
    _, intent = paid_order(shop, customer_user, VariantFactory(stock=5))
    dispute = standin.dispute(intent["id"])
    [created] = shop.undelivered("charge.dispute.created")
    closed = late_copy(created)
    closed["type"] = "charge.dispute.closed"
    closed["data"]["object"]["status"] = final

    assert shop.deliver(closed).status_code == 200
    assert shop.deliver(created).status_code == 200

    row = Dispute.objects.get(provider_dispute_id=dispute["id"])
    assert (row.outcome, row.needs_attention, row.provider_status) == ("won", False, final)
    assert row.closed_at is not None


def test_a_late_asynchronous_payment_given_back_leaves_the_cancelled_order_cancelled(
    shop, standin, customer_user
):
    """A bank debit completes its checkout unpaid (the payment in flight), the reservation ends
    and its unit is sold, then the debit succeeds: the payment is given back, and its refund
    never makes the never-paid order refunded."""
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id, async_payment=True)
    shop.deliver_new()
    lapse(order)
    orders_expire()
    shop.book(AccountFactory().user, variant)  # takes the last unit
    standin.succeed_async(session_id)
    shop.deliver_new()
    shop.deliver_new()  # the refund's own events

    assert status_of(order) == "cancelled"
    assert rows() == [("late", "succeeded", 2999, False)]
    assert RepairOrder.objects.get(pk=order["id"]).amount_refunded == Decimal("0.00")
    assert history(order) == [("pending", "cancelled", "task")]


@pytest.mark.parametrize("status", [401, 403, 409])
def test_a_refund_ask_with_no_answer_is_asked_again_not_given_up(
    shop, standin, customer_user, status
):
    """A key refused (401, 403) or the same key still in flight (409): Stripe decided nothing,
    so the refund stays asked for, unflagged, and the outbox asks again."""
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    orders_expire()
    OutboxEntry.objects.filter(kind="checkout_expiry").delete()  # not this test's concern
    shop.book(AccountFactory().user, variant)
    standin.pay(session_id)
    standin.fail_next(3, status)  # the SDK's retries (of a 409) meet it too
    shop.deliver_new("checkout.session.completed")
    standin.fail_next(0, status)

    [row] = Refund.objects.all()
    assert (row.status, row.needs_attention) == ("requested", False)
    entry = OutboxEntry.objects.get(dedupe_key=f"refund:{row.pk}")
    assert entry.status == "pending"
    OutboxEntry.objects.filter(pk=entry.pk).update(due_at=timezone.now())
    drain()
    row.refresh_from_db()
    assert row.status == "succeeded"
    assert len(standin.refunds) == 1
