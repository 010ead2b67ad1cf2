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

Orders never import payments: payments listens to ``order_cancelled`` to close the provider's
checkout of a released order (see ``docs/decisions.md``).
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
