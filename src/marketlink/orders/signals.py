"""Public signals: how a host site, and marketlink's own payments app, hear about orders.

Each is sent once the change is committed (``transaction.on_commit``), so a receiver never sees
an order that a rollback then takes back, and may safely enqueue work or call other systems.
Receivers get ``sender=RepairOrder``, ``order`` (the order as it was written), ``source`` (what
made the change: api, webhook, task, cli, admin) and, where it applies, ``previous`` (the status
it left). A receiver that raises is logged and does not affect the others (``send_robust``).

- ``order_placed``: a customer booked; the order is ``pending`` and holds a unit.
- ``order_paid``: the payment was confirmed (``pending`` or a released status -> ``paid``).
- ``order_cancelled``: a pending order was released without payment: cancelled by its customer
  or by its reservation lapsing (``status`` "cancelled"), or its payment failed ("failed").
- ``order_refunded``: the order's payment was refunded (the refund succeeded at the provider).
- ``order_disputed``: the customer's bank opened or closed a dispute on the order's payment
  (sent by the payments app, with ``dispute``).

One more, for marketlink's own apps rather than hosts: ``order_status_changing`` is sent *inside*
the transaction that changes an order's status (``order``, ``previous``, ``to``, ``source``), so
a receiver can write what the change owes (an outbox entry: the invoice, closing a checkout, a
vendor's transfer) in that same transaction. It must only write rows: a receiver that raises
rolls the change back, and one that calls another system holds the transaction open.

Orders never import payments: payments hears of orders through these (see
``docs/decisions.md``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from marketlink.orders.models import RepairOrder

logger = logging.getLogger(__name__)

order_placed = Signal()
order_paid = Signal()
order_cancelled = Signal()
order_refunded = Signal()
order_disputed = Signal()
order_status_changing = Signal()


def send_on_commit(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` with ``sender=RepairOrder`` after the current transaction commits
    (nothing is queued for a signal nobody listens to: bookings stay cheap)."""
    if not signal.has_listeners(RepairOrder):
        return

    def send() -> None:
        for receiver, result in signal.send_robust(sender=RepairOrder, **kwargs):
            if isinstance(result, Exception):
                logger.error(
                    "a receiver of an order signal failed: %r",
                    receiver,
                    exc_info=(type(result), result, result.__traceback__),
                )

    transaction.on_commit(send)


def send_in_transaction(**kwargs: Any) -> None:
    """``order_status_changing`` now, in the caller's transaction; a receiver's error is the
    change's (it rolls back)."""
    if order_status_changing.has_listeners(RepairOrder):
        order_status_changing.send(sender=RepairOrder, **kwargs)
