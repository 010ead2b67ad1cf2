"""Reconciliation: asking the provider about orders a lost webhook may have left wrong, and
applying what the webhook would have, through the same handlers."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import EventKind, ProviderEvent
from marketlink.payments.handlers import mark_paid, release_if_pending
from marketlink.payments.rules import RELEASED_STATUSES, PermanentProblem

RECONCILED_STATUSES = frozenset({OrderStatus.PENDING, *RELEASED_STATUSES})


def order_reconcile(*, order: RepairOrder, source: str = ChangeSource.CLI) -> str:
    """Ask the provider about an unpaid order's checkout and apply what a lost webhook would
    have: a paid session marks the order paid (amount checked; a released order takes its unit
    again or the payment is refunded), an expired one whose reservation lapsed cancels it."""
    if order.status not in RECONCILED_STATUSES or not order.checkout_session_id:
        return "nothing to check"
    session = get_gateway().fetch_checkout(order.checkout_session_id)
    if session.payment_status == "paid":
        # What the lost checkout-completed event would have said.
        event = ProviderEvent(
            kind=EventKind.CHECKOUT_COMPLETED,
            event_id=f"reconcile-{session.id}",
            provider_type="reconcile",
            order_ref=str(order.id),
            session_id=session.id,
            payment_intent_id=session.payment_intent_id,
            amount_minor=session.amount_minor,
            currency=session.currency,
            paid=True,
        )
        with transaction.atomic():
            try:
                return mark_paid(order, event, source)
            except PermanentProblem as exc:
                return f"needs attention: {exc}"
    if session.status == "expired" and order.expires_at <= timezone.now():
        return release_if_pending(order, OrderStatus.CANCELLED, source, "checkout expired")
    return f"the provider says {session.status}/{session.payment_status}; nothing to do"
