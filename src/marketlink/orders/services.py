"""Writes for orders: placing one, cancelling, completing and expiring them (each status change
through the state machine, ``orders.transitions``), and the payment columns payments keeps.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from marketlink import conf, metrics, money
from marketlink.exceptions import Conflict, InvalidInput
from marketlink.orders import limits, signals, stock
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.transitions import TransitionRefused, order_transition
from marketlink.vendors.selectors import vendor_payout_terms

logger = logging.getLogger(__name__)

VENDOR_NOT_READY = (
    "This vendor cannot take bookings yet: their payout account is not ready to receive "
    "payments. Try again later."
)

NO_EMAIL = (
    "Booking needs an email address for the order and its receipt, and your account has none: "
    "add one to your account (or ask the site's staff to), then book again."
)


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
    config = conf.get()
    # What it copies from the variant (names, price, vendor) the write fills in.
    order = RepairOrder(
        customer=customer,
        variant_id=variant_id,
        customer_email=customer_email,
        currency=config.CURRENCY,
        payment_method=config.PAYMENT_GATEWAY,
        expires_at=timezone.now() + timedelta(seconds=config.RESERVATION_TTL),
        idempotency_key=idempotency_key,
    )
    limited = limits.limits_apply()
    try:
        if config.PAYOUTS_ENABLED:
            _fee_frozen(order, variant_id, config)
        # With limits, the customer's lock and count come first, outside the variant's lock, so
        # the variant stays locked for the one statement that takes its unit; the variant is
        # read before them, so one that cannot be booked costs no lock.
        with transaction.atomic() if limited else nullcontext():
            if limited:
                stock.read_variant(order, variant_id)
                limits.lock_customer(customer)
                # A retry with this key that waited on the customer's lock finds its order now.
                replay = _replay(customer, idempotency_key, variant_id) if idempotency_key else None
                if replay is not None:
                    return replay, False
                limits.refuse_over_limits(customer=customer, variant_id=variant_id)
            # A duplicate key fails the whole limited transaction, so it needs no savepoint.
            released = stock.reserve(order, variant_id, savepoint=not limited)
    except IntegrityError:
        # A concurrent retry with the same Idempotency-Key won; our unit went back on rollback.
        replay = _replay(customer, idempotency_key, variant_id) if idempotency_key else None
        if replay is None:
            raise
        return replay, False
    except stock.SoldOut:
        _report_sold_out(variant_id)
        raise
    _announce_released(released, variant_id)
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


def _fee_frozen(order: RepairOrder, variant_id: uuid.UUID, config: conf.MarketlinkSettings) -> None:
    """With payouts on, the order carries the platform's fee and the vendor's share from the
    start: the variant is read first (what the order copies of it, which the write then keeps
    as read), the booking refused while its vendor's payout account is not ready, and the fee
    reckoned from the vendor's own percentage if staff set one, else the site's."""
    stock.read_variant(order, variant_id)
    ready, percent = vendor_payout_terms(order.vendor_id)
    if not ready:
        raise Conflict(VENDOR_NOT_READY, code="vendor_payouts_not_ready")
    order.platform_fee = money.platform_fee(
        order.total_amount,
        config.CURRENCY,
        percent=config.PLATFORM_FEE_PERCENT if percent is None else percent,
        fixed=config.PLATFORM_FEE_FIXED,
    )
    order.vendor_share = order.total_amount - order.platform_fee
    order.payouts_on = True


def _report_sold_out(variant_id: uuid.UUID) -> None:
    logger.info(
        "variant %s is sold out",
        variant_id,
        extra={"event": "reservation.sold_out", "variant_id": variant_id},
    )
    metrics.booking_answered("sold_out")


def _announce_released(released: list[RepairOrder], variant_id: uuid.UUID) -> None:
    """What a release owes once committed, for the lapsed reservations a booking released."""
    if not released:
        return
    for order in released:
        signals.send_on_commit(
            signals.order_cancelled,
            order=order,
            previous=OrderStatus.PENDING,
            source=ChangeSource.API,
        )
    logger.info(
        "released %d lapsed reservations of variant %s at booking",
        len(released),
        variant_id,
        extra={
            "event": "reservations.expired",
            "count": len(released),
            "source": ChangeSource.API,
            "variant_id": variant_id,
            "order_ids": [order.id for order in released],
        },
    )


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
