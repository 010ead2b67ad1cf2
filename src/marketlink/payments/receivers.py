"""How payments follows orders without orders knowing of payments: receivers of the public order
signals (``marketlink.orders.signals``), connected when the app is ready."""

from __future__ import annotations

from typing import Any

from marketlink.orders.models import RepairOrder
from marketlink.payments import tasks


def close_checkout_of_released_order(sender: Any, order: RepairOrder, **kwargs: Any) -> None:
    """A released order's unit may be sold again: its checkout must not stay payable. Stripe
    keeps a session open at least 30 minutes, so one opened late in a reservation outlives it.
    Closed by a task, so neither a booking that reclaims lapsed reservations nor the expiry job
    waits on the provider."""
    if order.checkout_session_id:
        tasks.expire_checkout(str(order.id))


def invoice_paid_order(sender: Any, order: RepairOrder, **kwargs: Any) -> None:
    """Every order that was paid owes one invoice, whichever event told us of the payment: a
    confirmation, or a refund seen first (the order is paid, then refunded, in one step). The
    invoice records the money taken; a refund afterwards does not take it back."""
    tasks.send_invoice(str(order.id))
