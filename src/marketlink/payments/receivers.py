"""How payments follows orders without orders knowing of payments: receivers of the order
signals (``marketlink.orders.signals``), connected when the app is ready."""

from __future__ import annotations

from typing import Any

from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.outbox.services import outbox_write
from marketlink.payments.rules import RELEASED_STATUSES

INVOICE_KIND = "invoice"
CHECKOUT_EXPIRY_KIND = "checkout_expiry"


def owe_what_the_change_does(
    sender: Any, order: RepairOrder, previous: str, to: str, **kwargs: Any
) -> None:
    """In the transaction of the order's change, the side effects it owes, as outbox entries:

    - every order that was paid owes one invoice, whichever event told us of the payment (a
      confirmation, or a refund seen first: the order is paid, then refunded). The invoice
      records the money taken; a refund afterwards does not take it back;
    - a released order's checkout must not stay payable, since its unit may be sold again:
      Stripe keeps a session open at least 30 minutes, so one opened late in a reservation
      outlives it. Closed by the drainer, so neither a booking that reclaims lapsed
      reservations nor the expiry job waits on the provider."""
    if to == OrderStatus.PAID:
        outbox_write(kind=INVOICE_KIND, subject_id=order.pk)
    elif previous == OrderStatus.PENDING and to in RELEASED_STATUSES and order.checkout_session_id:
        outbox_write(
            kind=CHECKOUT_EXPIRY_KIND,
            subject_id=order.checkout_session_id,
            payload={"order_id": str(order.pk)},
        )
