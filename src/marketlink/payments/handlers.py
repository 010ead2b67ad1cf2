"""What each kind of provider event does to its order: one function per kind, in ``HANDLERS``.

Every handler is idempotent and tolerates events arriving late, twice or out of order: it reads
the order's status as it is now and moves it through the orders state machine, so the result is
the same whatever the order of delivery. Only the payment that paid an order is its payment: an
intent that was declined, or that paid a second time, is never mistaken for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketlink.money import to_minor_units
from marketlink.orders import signals
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.services import (
    NoStockToRetake,
    order_payment_columns_set,
    order_transition,
)
from marketlink.payments import refunds, tasks
from marketlink.payments.models import Dispute, DisputeOutcome, Refund, RefundKind
from marketlink.payments.rules import (
    PAID_STATUSES,
    RELEASED_STATUSES,
    PermanentProblem,
    with_fresh_status,
)

logger = logging.getLogger(__name__)

Handler = Callable[[RepairOrder, dict[str, Any], str], str]


def _remember_session(order: RepairOrder, obj: dict[str, Any]) -> None:
    """A checkout session this event names, to find the order by its later events. (The payment
    intent is recorded only with the payment that pays the order: see :func:`mark_paid`.)"""
    if obj.get("object") == "checkout.session" and not order.checkout_session_id:
        order_payment_columns_set(
            order_id=order.pk, when={"checkout_session_id": None}, checkout_session_id=obj["id"]
        )
        order.checkout_session_id = obj["id"]


def intent_of(obj: dict[str, Any]) -> str | None:
    """The payment intent an event's object is, or belongs to."""
    intent = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    return intent if isinstance(intent, str) and intent else None


def _refund_extra_payment(order: RepairOrder, intent: str | None, kind: str) -> None:
    """Money we must not keep: record its refund now, in this transaction, and ask for it once
    committed. The row is what finds the refund again if the task never gets through."""
    if not intent:
        raise PermanentProblem("a payment to give back, without a payment intent to refund")
    refund = refunds.refund_requested(order=order, payment_intent_id=intent, kind=kind)
    refund_pk = str(refund.pk)
    transaction.on_commit(lambda: tasks.refund_payment(refund_pk), robust=True)


def mark_paid(order: RepairOrder, obj: dict[str, Any], amount: Any, source: str) -> str:
    """The order was paid ``amount`` (minor units) by the payment in ``obj``."""
    currency = str(obj.get("currency") or "").lower()
    expected = to_minor_units(order.total_amount, order.currency)
    if amount != expected or currency != order.currency:
        raise PermanentProblem(
            f"amount mismatch: the event says {amount} {currency or '?'}, "
            f"the order is {expected} {order.currency}"
        )
    _remember_session(order, obj)
    intent = intent_of(obj)

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
        paid_at=timezone.now(),
        # The payment that pays the order is the one a refund must target.
        **({"payment_intent_id": intent} if intent else {}),
    )
    order_id = str(order.id)
    transaction.on_commit(lambda: tasks.send_invoice(order_id), robust=True)


def release_if_pending(order: RepairOrder, to: str, source: str, note: str) -> str:
    def act(order: RepairOrder) -> str:
        if order.status != OrderStatus.PENDING:
            return f"order is {order.status}; nothing to release"
        order_transition(
            order_id=order.id, to=to, source=source, expected=OrderStatus.PENDING, note=note
        )
        return note

    return with_fresh_status(order, act)


def _on_session_completed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    if obj.get("payment_status") != "paid":
        _remember_session(order, obj)
        # The intent in flight is the one that will pay (or fail) this completed checkout.
        intent = intent_of(obj)
        if intent and not order.payment_intent_id:
            order_payment_columns_set(
                order_id=order.pk, when={"payment_intent_id": None}, payment_intent_id=intent
            )
        return "checkout completed; waiting for the asynchronous payment"
    return mark_paid(order, obj, obj.get("amount_total"), source)


def _on_async_succeeded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    return mark_paid(order, obj, obj.get("amount_total"), source)


def _on_intent_succeeded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    return mark_paid(order, obj, obj.get("amount_received", obj.get("amount")), source)


def _on_async_failed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    _remember_session(order, obj)
    return release_if_pending(order, OrderStatus.FAILED, source, "asynchronous payment failed")


def _on_session_expired(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    if order.checkout_session_id and order.checkout_session_id != obj.get("id"):
        return "an earlier checkout session expired; the order has a newer one"
    if order.expires_at > timezone.now():
        # The session id stays: the next open finds it expired and makes a new session under a
        # key derived from it (cleared, the first key would bring the dead session back).
        order_payment_columns_set(
            order_id=order.pk, when={"checkout_session_id": obj.get("id")}, checkout_url=""
        )
        return "checkout expired before the reservation; the payment link makes a new one"
    return release_if_pending(order, OrderStatus.CANCELLED, source, "checkout session expired")


def _on_intent_failed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    # The declined intent is not recorded: it is not the order's payment, and must never be
    # taken for it (a refund of the intent that does pay would then look like a duplicate's).
    return "a payment attempt was declined; the customer may retry while the reservation lasts"


def _on_charge_refunded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    intent = intent_of(obj)
    listed = [r for r in (obj.get("refunds") or {}).get("data") or [] if isinstance(r, dict)]
    if listed:
        # A charge is reported refunded with its refunds; one listed without a status or an
        # amount of its own is taken at the charge's word.
        said: dict[str, Any] = {"status": "succeeded"}
        if len(listed) == 1:
            said["amount"] = obj.get("amount_refunded")
        return "; ".join(
            _on_refund(order, {**said, **r, "payment_intent": intent}, source) for r in listed
        )
    tracked = Refund.objects.filter(payment_intent_id=intent).first() if intent else None
    if tracked is not None:
        # The refund's own events say how it ends; a charge's total counts pending refunds too.
        return f"refund {tracked.status}; its own events settle it"
    return refunds.refund_seen(
        order=order,
        payment_intent_id=intent,
        provider_refund_id=None,
        status="succeeded",
        amount_minor=obj.get("amount_refunded"),
        source=source,
    )


def _on_refund(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    """``refund.created|updated|failed`` and ``charge.refund.updated``: a refund's own status."""
    return refunds.refund_seen(
        order=order,
        payment_intent_id=intent_of(obj),
        provider_refund_id=obj.get("id") if isinstance(obj.get("id"), str) else None,
        status=str(obj.get("status") or ""),
        amount_minor=obj.get("amount"),
        source=source,
    )


def _on_dispute(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    """``charge.dispute.created|closed``: flag the order; a lost dispute is recorded as money
    gone (the order's status stays: the service may well have been delivered)."""
    dispute_id = obj.get("id")
    if not isinstance(dispute_id, str) or not dispute_id:
        raise PermanentProblem("a dispute without an id")
    status = str(obj.get("status") or "")
    outcome = {"won": DisputeOutcome.WON, "warning_closed": DisputeOutcome.WON}.get(
        status, DisputeOutcome.LOST if status == "lost" else DisputeOutcome.OPEN
    )
    values = {
        "payment_intent_id": intent_of(obj) or "",
        "amount_minor": obj.get("amount") if isinstance(obj.get("amount"), int) else 0,
        "currency": str(obj.get("currency") or "")[:3],
        "reason": str(obj.get("reason") or "")[:100],
        "provider_status": status[:40],
        "outcome": outcome,
        "needs_attention": outcome != DisputeOutcome.WON,
        "closed_at": timezone.now() if outcome != DisputeOutcome.OPEN else None,
    }
    try:
        with transaction.atomic():
            dispute, _ = Dispute.objects.update_or_create(
                provider_dispute_id=dispute_id, defaults={"order": order, **values}
            )
    except IntegrityError:  # the same dispute's events racing: the other one wrote it
        dispute = Dispute.objects.get(provider_dispute_id=dispute_id)
    signals.send_on_commit(signals.order_disputed, order=order, dispute=dispute, source=source)
    logger.warning("order %s: dispute %s is %s", order.id, dispute_id, status or "open")
    if outcome == DisputeOutcome.LOST:
        return "dispute lost: the payment went back to the customer's bank; flagged for staff"
    if outcome == DisputeOutcome.WON:
        return "dispute closed in the seller's favour"
    return "dispute opened; flagged for staff"


HANDLERS: dict[str, Handler] = {
    "checkout.session.completed": _on_session_completed,
    "checkout.session.async_payment_succeeded": _on_async_succeeded,
    "checkout.session.async_payment_failed": _on_async_failed,
    "checkout.session.expired": _on_session_expired,
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "charge.refunded": _on_charge_refunded,
    "refund.created": _on_refund,
    "refund.updated": _on_refund,
    "refund.failed": _on_refund,
    "charge.refund.updated": _on_refund,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.closed": _on_dispute,
}
