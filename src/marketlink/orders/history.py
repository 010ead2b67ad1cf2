"""The history rows of a status change made to several orders at once.

``services.order_transition`` records each single change itself. A booking that finds no free
unit releases all of the variant's lapsed reservations in one set-based ``UPDATE``
(``stock.reserve``), and their history is written here, in one ``INSERT``: this is the only
place outside ``order_transition`` that writes ``OrderStatusChange`` rows, so whatever
``order_transition`` records beside status, source and note belongs here too.
"""

from __future__ import annotations

from collections.abc import Sequence

from marketlink.orders.models import OrderStatusChange, RepairOrder


def changes_record(
    orders: Sequence[RepairOrder], *, from_status: str, to_status: str, source: str, note: str
) -> None:
    """One history row per order, all in one statement, in the caller's transaction."""
    OrderStatusChange.objects.bulk_create(
        OrderStatusChange(
            order_id=order.pk,
            from_status=from_status,
            to_status=to_status,
            source=source,
            note=note[:500],
        )
        for order in orders
    )
