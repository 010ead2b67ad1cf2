"""A refund marketlink decided to make is never lost: its row and the outbox entry owing the ask
are written with the decision, so when the wake that was to have it asked is lost (a flushed
queue, a killed consumer), the drainer's periodic run asks, and ``marketlink reconcile`` does too
(in its own process) for one left past the grace period; a pending one is read again, never
asked again; and ``doctor`` fails while one is left unmade.

Through the real ``stripe`` SDK and the local Stripe stand-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cli_runner import invoke_json
from django.utils import timezone
from stripe_shop import Shop, lapse, status_of

from marketlink.orders.services import orders_expire
from marketlink.outbox.tasks import drain_outbox_periodically
from marketlink.payments.gateways.base import RefundRequest
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payments.models import Refund
from marketlink.payments.periodic import follow_up_refunds
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db

REFUNDS = "/v1/refunds"


def asks(standin: Any) -> int:
    """How many times the provider was asked to make a refund."""
    return sum(1 for r in standin.requests_log if (r.method, r.path) == ("POST", REFUNDS))


def late_payment_whose_refund_task_is_lost(shop: Shop, customer: Any) -> Refund:
    """An order cancelled by the expiry job, paid late with no unit left: marketlink decides to
    give the payment back, and the task that was to ask is lost (its on-commit never runs)."""
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer, variant)
    lapse(order)
    orders_expire()
    shop.book(AccountFactory().user, variant)  # takes the last unit
    shop.standin.pay(session_id)
    for event in shop.undelivered("checkout.session.completed"):
        shop.deliver(event, run_on_commit=False)
    [refund] = Refund.objects.all()
    assert (refund.kind, refund.status, refund.attempts) == ("late", "requested", 0)
    return refund


def days_pass(refund: Refund, days: float) -> None:
    Refund.objects.filter(pk=refund.pk).update(
        updated_at=timezone.now() - timedelta(days=days), created_at=refund.created_at
    )


def doctor_refunds() -> dict[str, Any]:
    _, document = invoke_json("doctor")
    return next(item for item in document["items"] if item["check"] == "refunds and disputes")


def test_a_lost_refund_task_is_found_by_reconcile_and_doctor_and_asked_again(
    shop, standin, customer_user, settings, django_capture_on_commit_callbacks
):
    settings.DEBUG = True
    refund = late_payment_whose_refund_task_is_lost(shop, customer_user)
    days_pass(refund, 3)

    assert doctor_refunds()["status"] == "fail"
    code, dry = invoke_json("reconcile", "--dry-run")
    assert (code, asks(standin)) == (0, 0)  # a dry run never asks the provider for money
    assert [item["kind"] for item in dry["items"]] == ["refund_unsettled"]

    with django_capture_on_commit_callbacks(execute=True):
        code, real = invoke_json("reconcile")

    assert code == 0
    assert [item["kind"] for item in real["items"]] == ["refund_unsettled"]
    assert asks(standin) == 1
    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == ("succeeded", 1)
    [made] = standin.refunds.values()
    assert made["metadata"]["marketlink_refund_id"] == str(refund.pk)
    assert doctor_refunds()["status"] == "ok"
    with django_capture_on_commit_callbacks(execute=True):
        assert invoke_json("reconcile")[1]["items"] == []
    assert asks(standin) == 1


def test_the_periodic_drain_asks_for_a_refund_whose_wake_was_lost(shop, standin, customer_user):
    refund = late_payment_whose_refund_task_is_lost(shop, customer_user)

    assert drain_outbox_periodically.call_local()["done"] >= 1

    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert asks(standin) == 1
    assert drain_outbox_periodically.call_local() == {}


def test_an_old_ask_whose_answer_was_lost_is_looked_up_before_asking_again(
    shop, standin, customer_user
):
    """Stripe forgets an idempotency key after 24 hours: asking again under it then could make
    a second refund. The refund is looked up by the reference marketlink sent with it first."""
    refund = late_payment_whose_refund_task_is_lost(shop, customer_user)
    # Asked two days ago; the provider made it, and its answer and events never reached us.
    standin.drop_deliveries = True
    made_at_the_provider(refund)
    Refund.objects.filter(pk=refund.pk).update(
        attempts=1, first_asked_at=timezone.now() - timedelta(days=2)
    )
    days_pass(refund, 2)

    assert drain_outbox_periodically.call_local()["done"] >= 1

    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == ("succeeded", 1)
    assert asks(standin) == 1  # the one that made it: found, not asked again
    assert len(standin.refunds) == 1


def test_an_old_ask_the_provider_never_got_is_asked_anew(shop, standin, customer_user):
    refund = late_payment_whose_refund_task_is_lost(shop, customer_user)
    Refund.objects.filter(pk=refund.pk).update(
        attempts=1, first_asked_at=timezone.now() - timedelta(days=2)
    )
    days_pass(refund, 2)

    assert drain_outbox_periodically.call_local()["done"] >= 1

    refund.refresh_from_db()
    assert (refund.status, refund.attempts) == ("succeeded", 2)
    assert refund.first_asked_at > timezone.now() - timedelta(minutes=1)
    assert asks(standin) == 1


def made_at_the_provider(refund: Refund) -> None:
    """The request marketlink sent for ``refund``, as the provider received it."""
    StripeGateway().refund(
        RefundRequest(
            payment_intent_id=refund.payment_intent_id,
            amount_minor=refund.amount_minor,
            idempotency_key=refund.idempotency_key,
            reference=str(refund.pk),
            order_id=str(refund.order_id),
        )
    )


def test_a_pending_refund_is_read_again_and_never_asked_again(shop, standin, customer_user):
    standin.refund_status = "pending"
    refund = late_payment_whose_refund_task_is_lost(shop, customer_user)
    assert drain_outbox_periodically.call_local()["done"] >= 1
    refund.refresh_from_db()
    assert refund.status == "pending"
    [made] = standin.refunds
    standin.drop_deliveries = True  # the refund's own events are lost
    standin.settle_refund(made, "succeeded")
    days_pass(refund, 1)

    assert follow_up_refunds.call_local() == 1

    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert asks(standin) == 1
    assert status_of({"id": str(refund.order_id)}) == "cancelled"
