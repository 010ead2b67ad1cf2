"""What each kind of provider event does to its order: one function per kind, in ``HANDLERS``.

Handlers read :class:`ProviderEvent` values, never a provider's JSON: each gateway parses its
own.

Every handler is idempotent and tolerates events arriving late, twice or out of order: it reads
the order's status as it is now and moves it through the orders state machine, so the result is
the same whatever the order of delivery. Only the payment that paid an order is its payment: an
intent that was declined, or that paid a second time, is never mistaken for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketlink.money import to_minor_units
from marketlink.orders import signals
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.services import order_payment_columns_set
from marketlink.orders.transitions import NoStockToRetake, order_transition
from marketlink.payments import refunds
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import EventKind, ProviderEvent
from marketlink.payments.models import Dispute, DisputeOutcome, RefundKind
from marketlink.payments.refund_records import refunds_record
from marketlink.payments.rules import (
    PAID_STATUSES,
    RELEASED_STATUSES,
    PermanentProblem,
    with_fresh_status,
)
from marketlink.payments.selectors import payment_given_back

logger = logging.getLogger(__name__)

Handler = Callable[[RepairOrder, ProviderEvent, str], str]


def _remember_session(order: RepairOrder, event: ProviderEvent) -> None:
    """A checkout session this event names, to find the order by its later events. (The payment
    intent is recorded only with the payment that pays the order: see :func:`mark_paid`.)"""
    if event.session_id and not order.checkout_session_id:
        try:
            with transaction.atomic():
                order_payment_columns_set(
                    order_id=order.pk,
                    when={"checkout_session_id": None},
                    checkout_session_id=event.session_id,
                )
        except IntegrityError:
            raise PermanentProblem(
                f"checkout {event.session_id} is recorded on another order"
            ) from None
        order.checkout_session_id = event.session_id


def _refund_extra_payment(order: RepairOrder, intent: str | None, kind: str) -> None:
    """Money we must not keep: its refund, and the outbox entry owing the ask, written now, in
    this transaction: once committed it is asked for, whatever becomes of this process."""
    if not intent:
        raise PermanentProblem("a payment to give back, without a payment intent to refund")
    refunds.refund_requested(order=order, payment_intent_id=intent, kind=kind)


def mark_paid(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    """The order was paid ``event.amount_minor`` by the payment ``event`` names."""
    currency = (event.currency or "").lower()
    expected = to_minor_units(order.total_amount, order.currency)
    if event.amount_minor != expected or currency != order.currency:
        raise PermanentProblem(
            f"amount mismatch: the event says {event.amount_minor} {currency or '?'}, "
            f"the order is {expected} {order.currency}"
        )
    _remember_session(order, event)
    intent = event.payment_intent_id
    if intent and payment_given_back(intent):
        # Decided once (a second payment, or a late one that found no unit): a later event of
        # the same payment must not take a unit while its refund is under way.
        return f"payment {intent} is being given back; it does not pay the order"

    def act(order: RepairOrder) -> str:
        status = order.status
        if status in PAID_STATUSES or status == OrderStatus.REFUNDED:
            if intent and order.payment_intent_id and intent != order.payment_intent_id:
                # The customer paid twice (two checkouts, or a retry): money is never kept twice,
                # also when the order's own payment was refunded meanwhile.
                _refund_extra_payment(order, intent, RefundKind.DUPLICATE)
                return f"a second payment ({intent}) for a {status} order: refund queued"
            if status == OrderStatus.REFUNDED:
                return "the order was already refunded; nothing to do"
            return "already paid"
        note = "payment confirmed"
        if status in RELEASED_STATUSES:
            # Under the order's lock, as a decision to give this payment back is taken: another
            # event of it, processed at the same time, may have just decided so.
            list(RepairOrder.objects.select_for_update().filter(pk=order.pk).values_list("pk"))
            if intent and payment_given_back(intent):
                return f"payment {intent} is being given back; it does not pay the order"
            note = "payment arrived after the reservation ended; unit taken again"
            try:
                _paid(order, status, source, note, intent)
            except NoStockToRetake:
                _refund_extra_payment(order, intent, RefundKind.LATE)
                return (
                    "payment arrived after the reservation ended and no unit is left: refund queued"
                )
            return note
        _paid(order, status, source, note, intent)
        return note

    return with_fresh_status(order, act)


def _paid(order: RepairOrder, status: str, source: str, note: str, intent: str | None) -> None:
    order_transition(
        order_id=order.id,
        to=OrderStatus.PAID,
        source=source,
        expected=status,
        note=note,
        known=order,
        paid_at=timezone.now(),
        # The payment that pays the order is the one a refund must target.
        **({"payment_intent_id": intent} if intent else {}),
    )


def release_if_pending(order: RepairOrder, to: str, source: str, note: str) -> str:
    def act(order: RepairOrder) -> str:
        if order.status != OrderStatus.PENDING:
            return f"order is {order.status}; nothing to release"
        order_transition(
            order_id=order.id,
            to=to,
            source=source,
            expected=OrderStatus.PENDING,
            note=note,
            known=order,
        )
        return note

    return with_fresh_status(order, act)


def _on_checkout_completed(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    if event.paid:
        return mark_paid(order, event, source)
    _remember_session(order, event)
    # The intent in flight is the one that will pay (or fail) this completed checkout, if the
    # order still waits for it: a released order's is a late payment's, decided when it lands.
    if event.payment_intent_id and not order.payment_intent_id:
        order_payment_columns_set(
            order_id=order.pk,
            when={"payment_intent_id": None, "status": OrderStatus.PENDING},
            payment_intent_id=event.payment_intent_id,
        )
    return "checkout completed; waiting for the asynchronous payment"


def _on_payment_succeeded(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    return mark_paid(order, event, source)


def _on_async_failed(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    _remember_session(order, event)
    return release_if_pending(order, OrderStatus.FAILED, source, "asynchronous payment failed")


def _on_checkout_expired(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    if order.checkout_session_id and order.checkout_session_id != event.session_id:
        return "an earlier checkout session expired; the order has a newer one"
    if order.expires_at > timezone.now():
        # The session id stays: the next open finds it expired and makes a new session under a
        # key derived from it (cleared, the first key would bring the dead session back).
        order_payment_columns_set(
            order_id=order.pk, when={"checkout_session_id": event.session_id}, checkout_url=""
        )
        return "checkout expired before the reservation; the payment link makes a new one"
    return release_if_pending(order, OrderStatus.CANCELLED, source, "checkout session expired")


def _on_payment_failed(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    # The declined intent is not recorded: it is not the order's payment, and must never be
    # taken for it (a refund of the intent that does pay would then look like a duplicate's).
    return "a payment attempt was declined; the customer may retry while the reservation lasts"


def _on_refunds(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    """A refund's own status, or a refunded charge's refunds as the provider lists them (read
    before processing: the event itself says nothing of their status)."""
    return refunds_record(
        order=order, payment_intent_id=event.payment_intent_id, seen=event.refunds, source=source
    )


def _charge_refunds(event: ProviderEvent) -> ProviderEvent:
    """A refunded charge's event with its refunds, each with the status the provider gives it:
    a refund still pending must not be taken for money given back."""
    listed = get_gateway().fetch_refunds(event.payment_intent_id) if event.payment_intent_id else ()
    return dataclasses.replace(event, refunds=listed)


def _on_dispute(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    """Flag the order; a lost dispute is recorded as money gone (the order's status stays: the
    service may well have been delivered)."""
    if not event.dispute_id:
        raise PermanentProblem("a dispute without an id")
    status = event.dispute_status or ""
    outcome = CLOSED_AS.get(status, DisputeOutcome.OPEN)
    closed = Dispute.objects.filter(provider_dispute_id=event.dispute_id).exclude(
        outcome=DisputeOutcome.OPEN
    )
    if closed.exists():
        # Events come late and out of order: a closed dispute never moves back.
        return f"dispute {event.dispute_id} already closed; a {status or 'late'} event ignored"
    values = {
        "payment_intent_id": event.payment_intent_id or "",
        "amount_minor": event.amount_minor or 0,
        "currency": (event.currency or "")[:3],
        "reason": (event.dispute_reason or "")[:100],
        "provider_status": status[:40],
        "outcome": outcome,
        "needs_attention": outcome != DisputeOutcome.WON,
        "closed_at": timezone.now() if outcome != DisputeOutcome.OPEN else None,
    }
    try:
        with transaction.atomic():
            dispute, _ = Dispute.objects.update_or_create(
                provider_dispute_id=event.dispute_id, defaults={"order": order, **values}
            )
    except IntegrityError:  # the same dispute's events racing: the other one wrote it
        dispute = Dispute.objects.get(provider_dispute_id=event.dispute_id)
    signals.send_on_commit(signals.order_disputed, order=order, dispute=dispute, source=source)
    logger.warning("order %s: dispute %s is %s", order.id, event.dispute_id, status or "open")
    if outcome == DisputeOutcome.LOST:
        return "dispute lost: the payment went back to the customer's bank; flagged for staff"
    if outcome == DisputeOutcome.WON:
        return "dispute closed in the seller's favour"
    return "dispute opened; flagged for staff"


# Stripe's final dispute statuses: the money kept (won; an inquiry closed; a dispute prevented
# before it opened), or gone back to the customer's bank (lost).
CLOSED_AS = {
    "won": DisputeOutcome.WON,
    "warning_closed": DisputeOutcome.WON,
    "prevented": DisputeOutcome.WON,
    "lost": DisputeOutcome.LOST,
}

HANDLERS: dict[EventKind, Handler] = {
    EventKind.CHECKOUT_COMPLETED: _on_checkout_completed,
    EventKind.ASYNC_PAYMENT_SUCCEEDED: _on_payment_succeeded,
    EventKind.ASYNC_PAYMENT_FAILED: _on_async_failed,
    EventKind.CHECKOUT_EXPIRED: _on_checkout_expired,
    EventKind.PAYMENT_SUCCEEDED: _on_payment_succeeded,
    EventKind.PAYMENT_FAILED: _on_payment_failed,
    EventKind.CHARGE_REFUNDED: _on_refunds,
    EventKind.REFUND: _on_refunds,
    EventKind.DISPUTE: _on_dispute,
}

# What the provider must be asked before an event of these kinds is processed, outside any
# transaction: a ``GatewayError`` there leaves the event failed, answered 503 so it comes again.
PROVIDER_READS: dict[EventKind, Callable[[ProviderEvent], ProviderEvent]] = {
    EventKind.CHARGE_REFUNDED: _charge_refunds,
}
