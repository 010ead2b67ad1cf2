"""The orders state machine: every status change goes through :func:`order_transition`, which
checks the transition is legal, writes it with a conditional ``UPDATE … WHERE status =
<expected>`` (of two racing writers — a webhook and the expiry job, two cancels — exactly one
wins), moves the unit of stock with it, and records it (``history``: who or what made it, and
what it owes, in its own transaction). :func:`orders_advance` and :func:`order_pay_when_pending`
are the same rules for the two changes that run hottest: the invoice batch's paid ->
processing, many orders at once, and a payment confirming a pending order, in one statement.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from marketlink import audit
from marketlink.exceptions import Conflict, NotFound
from marketlink.orders import history, signals, sql, stock
from marketlink.orders.models import OrderStatus, RepairOrder

logger = logging.getLogger(__name__)

TRANSITIONS: dict[str, frozenset[str]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED, OrderStatus.FAILED}),
    OrderStatus.PAID: frozenset({OrderStatus.PROCESSING, OrderStatus.REFUNDED}),
    OrderStatus.PROCESSING: frozenset({OrderStatus.COMPLETED, OrderStatus.REFUNDED}),
    OrderStatus.COMPLETED: frozenset({OrderStatus.REFUNDED}),
    # A payment that lands after the reservation was released takes a unit again, or, with none
    # left, is refunded (payments).
    OrderStatus.CANCELLED: frozenset({OrderStatus.PAID, OrderStatus.REFUNDED}),
    OrderStatus.FAILED: frozenset({OrderStatus.PAID, OrderStatus.REFUNDED}),
    OrderStatus.REFUNDED: frozenset(),
}
# Statuses whose order holds a unit of stock; entering or leaving this set moves the unit.
HOLDS_STOCK = frozenset({OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.PROCESSING})
# A completed order used its unit: the service was delivered, so the capacity is gone whatever
# happens to the money later. Refunding a completed order gives money back, never a unit.
USED_STOCK = frozenset({OrderStatus.COMPLETED})
# Who hears of each change (``marketlink.orders.signals``), by the status entered.
SIGNALS_ON_ENTERING: dict[str, Signal] = {
    OrderStatus.PAID: signals.order_paid,
    OrderStatus.CANCELLED: signals.order_cancelled,
    OrderStatus.FAILED: signals.order_cancelled,
    OrderStatus.REFUNDED: signals.order_refunded,
}


class TransitionRefused(Conflict):
    """The order is not in a status this change may start from (or someone changed it first)."""


class NoStockToRetake(Conflict):
    """A released order could not take its unit back: the variant sold out meanwhile."""


def order_transition(
    *,
    order_id: uuid.UUID,
    to: str,
    source: str,
    expected: str | None = None,
    note: str = "",
    known: RepairOrder | None = None,
    **fields: Any,
) -> RepairOrder:
    """Move an order to ``to``; raises :class:`TransitionRefused` when that is not (or no longer)
    possible. ``expected`` pins the status the caller saw; without it, the current one is used.
    ``known``: the order as the caller already read it (with ``expected``), which saves reading
    it again; the conditional update still decides, so a stale copy only loses the race."""
    with transaction.atomic():
        order = known if known is not None and expected else None
        if order is None:
            order = RepairOrder.objects.filter(pk=order_id).first()
        if order is None:
            raise NotFound("No such order.")
        current = expected or order.status
        if to not in TRANSITIONS.get(current, frozenset()):
            raise TransitionRefused(f"An order that is {order.status} cannot become {to}.")
        won = RepairOrder.objects.filter(pk=order_id, status=current).update(
            status=to, updated_at=timezone.now(), **fields
        )
        if not won:
            order.refresh_from_db(fields=["status"])
            raise TransitionRefused(f"An order that is {order.status} cannot become {to}.")
        if current in HOLDS_STOCK and to not in HOLDS_STOCK | USED_STOCK:
            stock.return_unit(order.variant_id)
        elif current not in HOLDS_STOCK | USED_STOCK and to in HOLDS_STOCK:
            with stock.variant_lock(order.variant_id):
                if stock.take_unit(order.variant_id) is None:
                    raise NoStockToRetake(f"Variant {order.variant_id} has no unit left.")
        order.status = to
        for name, value in fields.items():
            setattr(order, name, value)
        history.changes_record([order], from_status=current, to_status=to, source=source, note=note)
        signal = SIGNALS_ON_ENTERING.get(to)
        if signal is not None:
            signals.send_on_commit(signal, order=order, previous=current, source=source)
    _log(order, current, source)
    return order


def orders_advance(
    *, order_ids: Sequence[uuid.UUID], to: str, expected: str, source: str, note: str = ""
) -> list[RepairOrder]:
    """Move many orders from ``expected`` to ``to`` at once (the invoice batch's paid ->
    processing): one locking read, one update and one insert of history rows for the lot. Only
    for a change that moves no unit and that no public signal announces; each order still goes
    through the state machine's rules and its in-transaction hook. Returns the orders that moved
    (the others had left ``expected`` already)."""
    moves_stock = (expected in HOLDS_STOCK) != (to in HOLDS_STOCK | USED_STOCK)
    if to not in TRANSITIONS.get(expected, frozenset()) or moves_stock or to in SIGNALS_ON_ENTERING:
        raise ValueError(f"{expected} -> {to} is not a change orders_advance makes")
    with transaction.atomic():
        moving = list(
            RepairOrder.objects.select_for_update().filter(pk__in=order_ids, status=expected)
        )
        now = timezone.now()
        moved = RepairOrder.objects.filter(
            pk__in=[order.pk for order in moving], status=expected
        ).update(status=to, updated_at=now)
        if moved != len(moving):  # SQLite has no row locks: one changed under us; try again
            raise TransitionRefused("Orders changed while they were moved; try again.")
        for order in moving:
            order.status, order.updated_at = to, now
        history.changes_record(moving, from_status=expected, to_status=to, source=source, note=note)
    for order in moving:
        _log(order, expected, source)
    return moving


def order_pay_when_pending(
    *,
    order_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    payment_intent_id: str | None,
    session_id: str | None,
    source: str,
    note: str,
    claim: sql.Claim | None = None,
) -> tuple[RepairOrder | None, bool]:
    """Pending -> paid for a payment of exactly the order's amount and currency, in the
    caller's transaction and without a savepoint: one conditional ``UPDATE`` that finds the
    order, checks the money and records the payment (``sql.pay_when_pending``, after the
    caller's ``claim``, in the same statement on PostgreSQL), then its history row and what it
    owes. ``None`` (the order untouched) when it is not pending, the money does not match,
    another payment is recorded on it, or ``claim`` wrote no row: the caller takes the general
    path, which says why. Pending -> paid moves no unit. The second value: whether ``claim``
    wrote its row."""
    order, claimed = sql.pay_when_pending(
        order_id=order_id,
        amount=amount,
        currency=currency,
        paid_at=timezone.now(),
        payment_intent_id=payment_intent_id,
        session_id=session_id,
        claim=claim,
    )
    if order is None:
        return None, claimed
    previous = OrderStatus.PENDING
    history.changes_record(
        [order], from_status=previous, to_status=order.status, source=source, note=note
    )
    signals.send_on_commit(signals.order_paid, order=order, previous=previous, source=source)
    _log(order, previous, source)
    return order, claimed


def _log(order: RepairOrder, previous: str, source: str) -> None:
    logger.info(
        "order %s: %s -> %s (%s)",
        order.pk,
        previous,
        order.status,
        source,
        extra={
            "event": "order.status_changed",
            "order_id": order.pk,
            "variant_id": order.variant_id,
            "from_status": previous,
            "to_status": order.status,
            "source": source,
            **audit.current().log_fields(),
        },
    )
