"""What payments knows about orders' statuses, shared by checkout, the webhook handlers, refunds
and reconciliation."""

from __future__ import annotations

from collections.abc import Callable

from marketlink.exceptions import ServiceUnavailable
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.selectors import PAID_STATUSES
from marketlink.orders.transitions import TransitionRefused

__all__ = ["PAID_STATUSES", "RELEASED_STATUSES", "PermanentProblem", "with_fresh_status"]

RELEASED_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED})


class PermanentProblem(Exception):
    """An event that processing again will not fix by itself (flagged for staff, answered 2xx)."""


def with_fresh_status(order: RepairOrder, act: Callable[[RepairOrder], str]) -> str:
    """Run ``act``; if another writer changed the order's status under it, look again (twice)."""
    for _ in range(3):
        try:
            return act(order)
        except TransitionRefused:
            order.refresh_from_db()
    raise ServiceUnavailable("The order kept changing while this event was processed.")
