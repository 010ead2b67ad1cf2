"""Writes for orders: placing one, and every status change through one state machine.

Every status change goes through :func:`order_transition`, which checks the transition is legal,
writes it with a conditional ``UPDATE … WHERE status = <expected>`` (of two racing writers — a
webhook and the expiry job, two cancels — exactly one wins), moves the unit of stock with it, and
records who or what made the change (the source, and the person acting in the
``marketlink.audit`` scope around it, if any).
"""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Subquery
from django.dispatch import Signal
from django.utils import timezone

from marketlink import audit, conf, metrics, money
from marketlink.exceptions import Conflict, InvalidInput, NotFound
from marketlink.orders import limits, signals, stock
from marketlink.orders.models import ChangeSource, OrderStatus, OrderStatusChange, RepairOrder

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


VENDOR_NOT_READY = (
    "This vendor cannot take bookings yet: their payout account is not ready to receive "
    "payments. Try again later."
)

NO_EMAIL = (
    "Booking needs an email address for the order and its receipt, and your account has none: "
    "add one to your account (or ask the site's staff to), then book again."
)


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
        actor = audit.current()
        OrderStatusChange.objects.create(
            order_id=order_id,
            from_status=current,
            to_status=to,
            source=source,
            note=note[:500],
            actor_id=_user_if_present(actor.user_pk),
            operator=actor.operator[: audit.OPERATOR_MAX_LENGTH],
        )
        order.status = to
        for name, value in fields.items():
            setattr(order, name, value)
        # What the change owes (an email, a transfer) is written now, in this transaction.
        signals.send_in_transaction(order=order, previous=current, to=to, source=source)
        signal = SIGNALS_ON_ENTERING.get(to)
        if signal is not None:
            signals.send_on_commit(signal, order=order, previous=current, source=source)
    logger.info(
        "order %s: %s -> %s (%s)",
        order_id,
        current,
        to,
        source,
        extra={
            "event": "order.status_changed",
            "order_id": order_id,
            "variant_id": order.variant_id,
            "from_status": current,
            "to_status": to,
            "source": source,
            "actor_id": actor.user_pk,
            "operator": actor.operator,
        },
    )
    return order


def _user_if_present(pk: Any) -> Subquery | None:
    """The acting user's key, read in the insert itself: a user deleted while their request
    ran (a token outlives its user by ``AUTH_USER_CACHE``) leaves the history row's actor empty
    instead of failing the change."""
    if pk is None:
        return None
    return Subquery(get_user_model().objects.filter(pk=pk).values("pk"))


# The provider ids an order keeps; payments writes them here, or with a status change.
PAYMENT_COLUMNS = frozenset(
    {"checkout_session_id", "checkout_url", "payment_intent_id", "amount_refunded"}
)


def order_payment_columns_set(*, order_id: uuid.UUID, when: dict[str, Any], **values: Any) -> bool:
    """Set payment columns of an order if it still matches ``when`` (a compare-and-set, so of
    two concurrent writers one wins); True if it did. The one way to change them outside
    :func:`order_transition`: status and stock never move here."""
    if not set(values) <= PAYMENT_COLUMNS or not set(when) <= PAYMENT_COLUMNS | {"status"}:
        raise ValueError(f"not payment columns: {sorted(set(values) | set(when))}")
    changed = RepairOrder.objects.filter(pk=order_id, **when).update(
        updated_at=timezone.now(), **values
    )
    return bool(changed)


def _replay(customer: Any, idempotency_key: str, variant_id: uuid.UUID) -> RepairOrder | None:
    order = RepairOrder.objects.filter(customer=customer, idempotency_key=idempotency_key).first()
    if order is not None and order.variant_id != variant_id:
        raise Conflict("This Idempotency-Key was already used to book a different variant.")
    return order


def order_place(
    *, customer: Any, customer_email: str, variant_id: uuid.UUID, idempotency_key: str | None = None
) -> tuple[RepairOrder, bool]:
    """Book one unit of a variant: ``(order, created)``; ``created`` is False on an idempotent
    replay. Raises :class:`Conflict` (409) when the variant is sold out, or when the customer
    already holds as many live pending orders as ``orders.limits`` allows."""
    if not customer_email:
        # The order, its receipt and the payment provider all go by the address.
        raise InvalidInput(NO_EMAIL)
    if idempotency_key is not None:
        replay = _replay(customer, idempotency_key, variant_id)
        if replay is not None:
            return replay, False
    variant = stock.variant_for_booking(variant_id=variant_id)
    config = conf.get()
    if config.PAYOUTS_ENABLED and not variant.vendor_payouts_ready:
        raise Conflict(VENDOR_NOT_READY, code="vendor_payouts_not_ready")
    if variant.stock < 1 and not stock.expired_pending_ids(variant_id=variant_id):
        raise _sold_out(variant_id)
    fee = _platform_fee(variant, config)
    order = RepairOrder(
        customer=customer,
        vendor_id=variant.vendor_id,
        variant_id=variant_id,
        customer_email=customer_email,
        vendor_name=variant.vendor_name,
        variant_name=variant.name,
        unit_price=variant.price,
        total_amount=variant.price,
        platform_fee=fee,
        vendor_share=variant.price - fee,
        payouts_on=config.PAYOUTS_ENABLED,
        currency=config.CURRENCY,
        payment_method=config.PAYMENT_GATEWAY,
        expires_at=timezone.now() + timedelta(seconds=config.RESERVATION_TTL),
        idempotency_key=idempotency_key,
    )
    limited = limits.limits_apply()
    try:
        # With limits, the customer's lock and count come first, outside the variant's lock, so
        # the variant stays locked for the one statement that takes its unit (the commit
        # follows; a booker behind it waits on the row that long, as the database decides).
        with transaction.atomic() if limited else nullcontext():
            if limited:
                limits.lock_customer(customer)
                # A retry with this key that waited on the customer's lock finds its order now.
                replay = _replay(customer, idempotency_key, variant_id) if idempotency_key else None
                if replay is not None:
                    return replay, False
                limits.refuse_over_limits(customer=customer, variant_id=variant_id)
            with stock.variant_lock(variant_id):
                # The common case in one statement; the slow path when there is no free unit. A
                # duplicate key fails the whole transaction here, so it needs no savepoint.
                if not stock.take_unit_into(
                    order, variant_id, "stock_after_reservation", savepoint=not limited
                ):
                    _place_after_reclaiming(order, variant_id)
    except IntegrityError:
        # A concurrent retry with the same Idempotency-Key won; our unit went back on rollback.
        replay = _replay(customer, idempotency_key, variant_id) if idempotency_key else None
        if replay is None:
            raise
        return replay, False
    signals.send_on_commit(signals.order_placed, order=order, source=ChangeSource.API)
    logger.info(
        "order %s placed for variant %s (%d left)",
        order.id,
        variant_id,
        order.stock_after_reservation,
        extra={
            "event": "reservation.taken",
            "order_id": order.id,
            "variant_id": variant_id,
            "stock_left": order.stock_after_reservation,
        },
    )
    metrics.booking_answered("taken")
    return order, True


def _platform_fee(variant: stock.BookableVariant, config: conf.MarketlinkSettings) -> Decimal:
    """The fee frozen on the order (0 with payouts off): the vendor's own percentage, if staff
    set one, else the site's."""
    if not config.PAYOUTS_ENABLED:
        return Decimal("0.00")
    percent = variant.vendor_fee_percent
    return money.platform_fee(
        variant.price,
        config.CURRENCY,
        percent=config.PLATFORM_FEE_PERCENT if percent is None else percent,
        fixed=config.PLATFORM_FEE_FIXED,
    )


def _sold_out(variant_id: uuid.UUID) -> Conflict:
    logger.info(
        "variant %s is sold out",
        variant_id,
        extra={"event": "reservation.sold_out", "variant_id": variant_id},
    )
    metrics.booking_answered("sold_out")
    return Conflict("This variant is out of stock.")


def _place_after_reclaiming(order: RepairOrder, variant_id: uuid.UUID) -> None:
    """Take a unit (after releasing lapsed reservations if none is free) and save the order, in
    one transaction; :class:`Conflict` when the variant is really sold out."""
    with transaction.atomic():
        stock_left = stock.take_unit(variant_id)
        if stock_left is None and _reclaim_expired(variant_id):
            stock_left = stock.take_unit(variant_id)
        if stock_left is None:
            raise _sold_out(variant_id)
        order.stock_after_reservation = stock_left
        order.save(force_insert=True)


def _reclaim_expired(variant_id: uuid.UUID) -> int:
    """Release this variant's lapsed reservations now, so a late expiry job never keeps a
    customer from a unit that is really free. Returns how many came back. The customer booking
    is not the person who cancels these (they are others' orders): no one is named."""
    reclaimed = 0
    with audit.acting():
        for order_id in stock.expired_pending_ids(variant_id=variant_id):
            try:
                order_transition(
                    order_id=order_id,
                    to=OrderStatus.CANCELLED,
                    source=ChangeSource.API,
                    expected=OrderStatus.PENDING,
                    note="reservation expired (reclaimed at booking)",
                )
            except TransitionRefused:
                continue  # paid or cancelled meanwhile
            reclaimed += 1
    return reclaimed


def order_cancel(*, order: RepairOrder, source: str = ChangeSource.API) -> RepairOrder:
    if order.status != OrderStatus.PENDING:
        raise TransitionRefused(
            f"Only pending orders can be cancelled; this one is {order.status}."
        )
    return order_transition(
        order_id=order.id,
        to=OrderStatus.CANCELLED,
        source=source,
        expected=OrderStatus.PENDING,
        note="cancelled by the customer",
    )


def order_complete(*, order: RepairOrder, source: str = ChangeSource.API) -> RepairOrder:
    if order.status != OrderStatus.PROCESSING:
        raise TransitionRefused(
            f"Only orders being processed can be completed; this one is {order.status}."
        )
    return order_transition(
        order_id=order.id, to=OrderStatus.COMPLETED, source=source, expected=OrderStatus.PROCESSING
    )


def orders_expire(*, source: str = ChangeSource.TASK, limit: int = 1000) -> int:
    """Cancel pending orders whose reservation lapsed and return their units. Safe to run late,
    twice or concurrently: each order is released by exactly one conditional update."""
    expired = 0
    for order_id in stock.expired_pending_ids(limit=limit):
        try:
            order_transition(
                order_id=order_id,
                to=OrderStatus.CANCELLED,
                source=source,
                expected=OrderStatus.PENDING,
                note="reservation expired",
            )
        except TransitionRefused:
            continue
        expired += 1
    if expired:
        logger.info(
            "expired %d reservations",
            expired,
            extra={"event": "reservations.expired", "count": expired, "source": source},
        )
    return expired


def order_reservation_extend(*, order_id: uuid.UUID, until: datetime) -> bool:
    """Let a pending order hold its unit until ``until`` (demo data that must outlive a demo;
    the API never lengthens a reservation). True if the order was still pending. Its checkout,
    if one is open, keeps its own end: Stripe caps a session at 24 hours."""
    changed = RepairOrder.objects.filter(pk=order_id, status=OrderStatus.PENDING).update(
        expires_at=until, updated_at=timezone.now()
    )
    return bool(changed)
