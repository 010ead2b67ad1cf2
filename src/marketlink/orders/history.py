"""The record of every status change: its history row (who or what made it, and the person in
the ``marketlink.audit`` scope around it, if any) and the in-transaction hook that writes what it
owes (``signals.order_status_changing``: an invoice, closing a checkout, a transfer).

``transitions`` records each change through here, one order or many at once (a booking that
releases a variant's lapsed reservations in one ``UPDATE``, the invoice batch's paid ->
processing): this is the one place that writes ``OrderStatusChange`` rows, so whatever a change
records beside status, source and note is added here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Subquery

from marketlink import audit
from marketlink.orders import signals
from marketlink.orders.models import OrderStatusChange, RepairOrder


def changes_record(
    orders: Sequence[RepairOrder], *, from_status: str, to_status: str, source: str, note: str
) -> None:
    """One history row per order, all in one statement, then each change's hook, in the
    caller's transaction (``orders`` already carry their new status)."""
    actor = audit.current()
    OrderStatusChange.objects.bulk_create(
        OrderStatusChange(
            order_id=order.pk,
            from_status=from_status,
            to_status=to_status,
            source=source,
            note=note[:500],
            actor_id=_user_if_present(actor.user_pk),
            operator=actor.operator[: audit.OPERATOR_MAX_LENGTH],
        )
        for order in orders
    )
    for order in orders:
        signals.send_in_transaction(order=order, previous=from_status, to=to_status, source=source)


def _user_if_present(pk: Any) -> Subquery | None:
    """The acting user's key, read in the insert itself: a user deleted while their request
    ran (a token outlives its user by ``AUTH_USER_CACHE``) leaves the history row's actor empty
    instead of failing the change."""
    if pk is None:
        return None
    return Subquery(get_user_model().objects.filter(pk=pk).values("pk"))
