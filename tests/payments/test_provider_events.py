"""Stripe's events read into marketlink's provider-neutral terms (``ProviderEvent``): the one
place Stripe's JSON is understood, so what each field becomes is pinned here."""

from __future__ import annotations

import pytest
from payment_events import checkout_session, event, payment_intent

from marketlink.exceptions import InvalidInput
from marketlink.payments.gateways.base import EventKind, ProviderRefund
from marketlink.payments.gateways.stripe import parse_event

pytestmark = pytest.mark.django_db


def test_a_paid_checkout_session(order):
    parsed = parse_event(event("checkout.session.completed", checkout_session(order)))
    assert parsed.kind == EventKind.CHECKOUT_COMPLETED
    assert parsed.paid is True
    assert parsed.order_ref == str(order.id)
    assert parsed.session_id == checkout_session(order)["id"]
    assert parsed.payment_intent_id == f"pi_test_{order.id.hex[:16]}"
    assert (parsed.amount_minor, parsed.currency) == (2999, "usd")


def test_a_checkout_completed_before_its_money_arrived(order):
    session = checkout_session(order, payment_status="unpaid")
    assert parse_event(event("checkout.session.completed", session)).paid is False


def test_a_payment_intent_counts_what_was_received(order):
    parsed = parse_event(event("payment_intent.succeeded", payment_intent(order, amount=5000)))
    assert (parsed.kind, parsed.paid, parsed.amount_minor) == (
        EventKind.PAYMENT_SUCCEEDED,
        True,
        2999,
    )
    assert parsed.session_id is None


def test_a_refunded_charge_is_not_taken_at_its_word_about_its_refunds():
    """A charge's event may list a refund without its status (and current API versions list
    none): its refunds are read from the provider before the event is processed."""
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 2999,
        "amount_refunded": 2999,
        "currency": "usd",
        "payment_intent": "pi_1",
        "metadata": {},
        "refunds": {"data": [{"id": "re_1", "object": "refund"}]},
    }
    parsed = parse_event(event("charge.refunded", charge))
    assert parsed.kind == EventKind.CHARGE_REFUNDED
    assert parsed.order_ref is None
    assert parsed.payment_intent_id == "pi_1"
    assert parsed.refunds == ()


def test_a_refunds_own_status_is_kept_as_the_provider_says():
    refund = {"id": "re_2", "object": "refund", "amount": 100, "payment_intent": "pi_2"}
    for status in ("pending", "failed", "succeeded"):
        parsed = parse_event(event("refund.updated", {**refund, "status": status}))
        assert parsed.kind == EventKind.REFUND
        assert parsed.refunds == (ProviderRefund(id="re_2", status=status, amount_minor=100),)
    # Its currency, and the reference marketlink sent with it, come along.
    ours = {**refund, "currency": "usd", "metadata": {"marketlink_refund_id": "row-1"}}
    [seen] = parse_event(event("refund.created", ours)).refunds
    assert (seen.currency, seen.reference) == ("usd", "row-1")
    # A refund without a status is not taken for a success.
    assert parse_event(event("charge.refund.updated", refund)).refunds[0].status == ""


def test_a_dispute():
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 2999,
        "currency": "usd",
        "payment_intent": "pi_3",
        "reason": "fraudulent",
        "status": "lost",
    }
    parsed = parse_event(event("charge.dispute.closed", dispute))
    assert (parsed.kind, parsed.dispute_id, parsed.dispute_status, parsed.dispute_reason) == (
        EventKind.DISPUTE,
        "dp_1",
        "lost",
        "fraudulent",
    )
    assert parsed.payment_intent_id == "pi_3"


def test_unknown_types_and_odd_shapes():
    assert parse_event(event("customer.created", {"id": "cus_1"})).kind == EventKind.OTHER
    odd = event("charge.refunded", {"object": "charge", "refunds": ["not", "a", "list object"]})
    assert parse_event(odd).refunds == ()
    with pytest.raises(InvalidInput):
        parse_event({"id": "evt_1", "type": "x"})
    with pytest.raises(InvalidInput):
        parse_event({"id": "", "type": "x", "data": {"object": {}}})
