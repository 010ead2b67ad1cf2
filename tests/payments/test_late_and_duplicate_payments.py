"""A payment is never lost and never kept twice, whatever order its events arrive in: late
payments (after the reservation ended), second payments for one order, refunds seen before the
payment, declined attempts. In one place, through both gateways: the dummy's endpoint with
Stripe-shaped events (``hook``), and the real Stripe SDK against the stand-in (``shop``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from order_helpers import history, refreshed, stock_of
from outbox_helpers import drain
from payment_events import deliver, event, payment_intent
from stripe_shop import lapse, status_of
from webhook_hook import completed, late_and_sold_out

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.orders.services import orders_expire
from marketlink.outbox.models import OutboxEntry
from marketlink.payments.gateways import dummy
from marketlink.payments.gateways.base import CheckoutRequest
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payments.models import Invoice, PaymentEvent, Refund
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


# --- Through the dummy gateway's endpoint -------------------------------------------------------


def test_a_second_payment_for_a_refunded_order_is_refunded(hook, order, refunds):
    from marketlink.payments.refunds import order_refund

    hook(completed(order, payment_intent="pi_first"))
    order_refund(order=refreshed(order))
    assert refreshed(order).status == "refunded"
    assert sorted(refunds.values()) == ["pi_first"]

    # A stray second checkout of the same order was paid too.
    response = hook(event("payment_intent.succeeded", payment_intent(order, id="pi_second")))

    assert response.status_code == 200
    assert sorted(refunds.values()) == ["pi_first", "pi_second"]
    assert refreshed(order).status == "refunded"


def test_two_late_payments_with_no_unit_left_are_both_refunded(
    hook, order, refunds, django_capture_on_commit_callbacks
):
    late_and_sold_out(order)
    later: list[Any] = []
    for intent in ("pi_first", "pi_second"):
        with django_capture_on_commit_callbacks(execute=False) as queued:
            body = event("payment_intent.succeeded", payment_intent(order, id=intent))
            assert deliver(hook.client, body, hook.secret).status_code == 200
        later.extend(queued)  # the refund tasks run later, after both deliveries
    for callback in later:
        callback()

    assert sorted(refunds.values()) == ["pi_first", "pi_second"]
    # Neither was the order's payment: giving them back leaves it as it was, never paid.
    assert refreshed(order).status == "cancelled"
    assert refreshed(order).amount_refunded == 0
    assert set(Refund.objects.values_list("status", flat=True)) == {"succeeded"}


def test_a_late_payment_refund_queued_before_a_restock_still_refunds_it(
    hook, order, refunds, django_capture_on_commit_callbacks
):
    """Payment A comes late with no unit left (its refund is queued); the vendor restocks; payment
    B (a second checkout) comes and takes the unit. A must still go back, and B is the order's."""
    late_and_sold_out(order)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        body = event("payment_intent.succeeded", payment_intent(order, id="pi_first"))
        assert deliver(hook.client, body, hook.secret).status_code == 200
    ServiceVariant.objects.filter(pk=order.variant_id).update(stock=1)
    hook(event("payment_intent.succeeded", payment_intent(order, id="pi_second")))
    assert refreshed(order).status == "processing"
    for callback in queued:
        callback()

    assert sorted(refunds.values()) == ["pi_first"]
    paid = refreshed(order)
    assert (paid.status, paid.payment_intent_id) == ("processing", "pi_second")
    assert stock_of(order) == 0


def test_a_declined_attempt_does_not_make_the_real_payment_look_like_a_duplicate(
    hook, order, refunds
):
    """A declined attempt on one checkout, then a payment on another: the payment that paid is
    the order's, so its own second event is no duplicate, and a refund targets it."""
    from marketlink.payments.refunds import order_refund

    declined = payment_intent(order, id="pi_declined", status="requires_payment_method")
    hook(event("payment_intent.payment_failed", declined))
    hook(completed(order, payment_intent="pi_paid"))
    hook(event("payment_intent.succeeded", payment_intent(order, id="pi_paid")))

    assert refunds == {}
    assert refreshed(order).payment_intent_id == "pi_paid"
    order_refund(order=refreshed(order))
    assert sorted(refunds.values()) == ["pi_paid"]


# --- Through the Stripe SDK and the stand-in -------------------------------------------------


def stray_checkout(order: dict[str, Any]) -> Any:
    """A second Checkout Session for the same order (say, one opened before a lost answer)."""
    return StripeGateway().create_checkout(
        CheckoutRequest(
            order_id=order["id"],
            amount_minor=int(Decimal(order["total_amount"]) * 100),
            currency="usd",
            description="stray",
            customer_email="someone@example.com",
            expires_at=timezone.now() + timedelta(hours=1),
            success_url="https://shop.example/ok",
            cancel_url="https://shop.example/no",
            idempotency_key="a-stray-session",
        )
    )


def test_a_refund_seen_before_the_payment_ends_refunded(mailoutbox, shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    intent = standin.pay(session_id)
    standin.refund(intent["id"])
    assert shop.deliver_new("charge.refunded") == [("charge.refunded", 200)]
    assert status_of(order) == "refunded"
    assert stock_of(variant) == 5
    assert shop.deliver_new() == [
        ("checkout.session.completed", 200),
        ("payment_intent.succeeded", 200),
        ("refund.created", 200),
    ]
    assert status_of(order) == "refunded"
    assert stock_of(variant) == 5
    assert [to for _, to, _ in history(order)] == ["paid", "refunded"]
    # Money was taken, then given back: the order owes its one invoice, which says so.
    assert [message.to for message in mailoutbox] == [[order["customer_email"]]]
    assert "Refunded: the whole amount was given back" in mailoutbox[0].body
    assert Invoice.objects.get(order_id=order["id"]).status == "sent"


def test_a_refund_seen_between_a_declined_attempt_and_the_payment_refunds_the_order(
    shop, standin, customer_user
):
    """A declined attempt on one checkout, then a payment on another, refunded in the dashboard
    before marketlink hears of the payment: the refund is the order's, whatever intent the
    declined attempt named."""
    variant = VariantFactory(stock=3)
    order, session_id = shop.opened(customer_user, variant)
    stray = stray_checkout(order)
    standin.fail(stray.id)
    assert shop.deliver_new() == [("payment_intent.payment_failed", 200)]
    intent = standin.pay(session_id)
    standin.refund(intent["id"])

    assert shop.deliver_new("charge.refunded") == [("charge.refunded", 200)]
    shop.deliver_new()

    assert status_of(order) == "refunded"
    assert RepairOrder.objects.get(pk=order["id"]).payment_intent_id == intent["id"]
    assert stock_of(variant) == 3
    assert [to for _, to, _ in history(order)] == ["paid", "refunded"]
    assert not PaymentEvent.objects.filter(needs_attention=True).exists()


def test_a_payment_after_expiry_takes_a_free_unit_again(mailoutbox, shop, standin, customer_user):
    variant = VariantFactory(stock=2)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    assert orders_expire() == 1
    assert stock_of(variant) == 2
    standin.pay(session_id)  # Stripe's session outlives the reservation
    assert shop.deliver_new() == [
        ("checkout.session.completed", 200),
        ("payment_intent.succeeded", 200),
    ]
    assert status_of(order) == "processing"
    assert stock_of(variant) == 1
    assert history(order) == [
        ("pending", "cancelled", "task"),
        ("cancelled", "paid", "webhook"),
        ("paid", "processing", "task"),
    ]
    change = OrderStatusChange.objects.get(order_id=order["id"], to_status="paid")
    assert "unit taken again" in change.note
    assert len(mailoutbox) == 1
    assert standin.refunds == {}


def test_a_payment_after_expiry_with_no_unit_left_is_refunded(
    mailoutbox, shop, standin, customer_user
):
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    orders_expire()
    someone_else = shop.book(AccountFactory().user, variant)  # takes the last unit
    assert stock_of(variant) == 0
    intent = standin.pay(session_id)

    assert shop.deliver_new() == [
        ("checkout.session.completed", 200),
        ("payment_intent.succeeded", 200),
    ]

    # The late payment is given back; it never was the order's payment, so the order stays
    # cancelled, whatever its refund does.
    assert status_of(order) == "cancelled"
    [refund] = standin.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], 2999)
    row = Refund.objects.get()
    assert (row.kind, row.status, row.provider_refund_id) == ("late", "succeeded", refund["id"])
    [request] = [r for r in standin.requests_log if r.path == "/v1/refunds"]
    assert request.idempotency_key == f"marketlink-refund-{row.pk}"
    assert request.params["metadata"] == {
        "marketlink_refund_id": str(row.pk),
        "order_id": order["id"],
    }
    assert history(order) == [("pending", "cancelled", "task")]
    completed = PaymentEvent.objects.get(event_type="checkout.session.completed")
    assert "refund" in completed.result
    assert shop.deliver_new() == [("charge.refunded", 200), ("refund.created", 200)]
    assert status_of(order) == "cancelled"
    assert status_of(someone_else) == "pending"
    assert stock_of(variant) == 0
    assert mailoutbox == []


def test_a_second_payment_for_a_paid_order_is_refunded(shop, standin, customer_user):
    """Two checkouts were paid (say, one opened before a lost answer, one after): the order is
    paid once and the second payment goes back to the customer automatically."""

    variant = VariantFactory(stock=2)
    order, first = shop.opened(customer_user, variant)
    stray = stray_checkout(order)
    standin.pay(first)
    shop.deliver_new()
    standin.pay(stray.id)
    assert {status for _, status in shop.deliver_new()} == {200}

    paid = RepairOrder.objects.get(pk=order["id"])
    assert paid.status == "processing"
    [refund] = standin.refunds.values()
    stray_intent = standin.sessions[stray.id]["payment_intent"]
    assert refund["payment_intent"] == stray_intent != paid.payment_intent_id
    refund_calls = [r for r in standin.requests_log if r.path == "/v1/refunds"]
    # The stray payment's first event decides its refund; its second finds it given back.
    row = Refund.objects.get()
    assert (row.kind, row.payment_intent_id) == ("duplicate", stray_intent)
    assert [r.idempotency_key for r in refund_calls] == [f"marketlink-refund-{row.pk}"]
    assert stock_of(variant) == 1
    assert Invoice.objects.filter(order_id=order["id"]).count() == 1
    # The refund's own event changes nothing: the order's payment was not refunded.
    shop.deliver_new()
    assert status_of(order) == "processing"


def test_a_duplicate_payment_whose_refund_cannot_be_made_yet_is_asked_again(
    shop, standin, customer_user
):
    """The second payment's refund fails with Stripe down: the money is not forgotten. The
    refund stays asked for, its outbox entry waiting for a retry, which gives it back once
    Stripe answers."""

    variant = VariantFactory(stock=2)
    order, first = shop.opened(customer_user, variant)
    stray = stray_checkout(order)
    standin.pay(first)
    shop.deliver_new()
    standin.pay(stray.id)
    standin.down = True
    assert {status for _, status in shop.deliver_new()} == {200}

    stray_intent = standin.sessions[stray.id]["payment_intent"]
    owed = Refund.objects.get(payment_intent_id=stray_intent)
    assert (owed.kind, owed.status, owed.needs_attention) == ("duplicate", "requested", False)
    assert owed.attempts >= 1
    assert "provider" in owed.last_error
    assert standin.refunds == {}
    assert status_of(order) == "processing"
    entry = OutboxEntry.objects.get(dedupe_key=f"refund:{owed.pk}")
    assert (entry.status, entry.due_at > timezone.now()) == ("pending", True)

    standin.down = False
    OutboxEntry.objects.filter(pk=entry.pk).update(due_at=timezone.now())  # its retry is due
    drain()

    owed.refresh_from_db()
    assert (owed.status, owed.needs_attention) == ("succeeded", False)
    [given_back] = standin.refunds.values()
    assert given_back["payment_intent"] == stray_intent
    assert status_of(order) == "processing"


def test_a_refund_the_provider_refuses_is_answered_502_and_flagged(
    hook, order, api, staff_user, monkeypatch
):
    """The provider refuses outright (say, more than is left): the refund stays asked for and is
    flagged at once, under a fresh key for whatever a person decides next, and the endpoint
    says so (502), never "Refund requested"."""
    from marketlink.payments.gateways.base import GatewayError

    hook(completed(order))

    def refuses(self: Any, request: Any) -> Any:
        raise GatewayError(
            "The payment provider refused to refund a payment: too much.", answered=True
        )

    monkeypatch.setattr(dummy.DummyGateway, "refund", refuses)
    answer = api.post(f"/orders/{order.pk}/refund/", user=staff_user)

    assert answer.status_code == 502
    assert "refused" in answer.json()["message"]
    refund = Refund.objects.get()
    assert (refund.status, refund.needs_attention) == ("requested", True)
    assert refund.idempotency_key == f"marketlink-refund-{refund.pk}-1"
    assert refreshed(order).status == "processing"
