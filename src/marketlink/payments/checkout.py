"""Checkouts: opening the provider's hosted checkout for a pending order, closing it when the
order is released, and telling the return pages what the provider says.

No function here holds a database transaction or a lock across a call to the payment provider.
"""

from __future__ import annotations

import contextlib
import logging
import math
from datetime import UTC, datetime
from urllib.parse import urljoin

from django.core.cache import cache
from django.utils import timezone

from marketlink import conf
from marketlink.exceptions import Conflict
from marketlink.money import to_minor_units
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.selectors import return_urls
from marketlink.orders.services import order_payment_columns_set
from marketlink.orders.transitions import order_transition
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.registry import Done, Failed, Outcome, Retry
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import (
    CHECKOUT_EXPIRY_STEP,
    MIN_CHECKOUT_LIFE,
    CheckoutRequest,
    GatewayError,
)
from marketlink.payments.rules import RELEASED_STATUSES

logger = logging.getLogger(__name__)


def checkout_expiry(order: RepairOrder) -> datetime:
    """When the order's checkout session should end: the reservation's end, unless that is
    sooner than providers allow (Stripe: 30 minutes). Then the first 5-minute mark after the
    earliest allowed end, so that a retry within those minutes sends the provider the very same
    parameters under the same idempotency key, and gets the same session back."""
    earliest = timezone.now() + MIN_CHECKOUT_LIFE
    if order.expires_at >= earliest:
        return order.expires_at
    step = CHECKOUT_EXPIRY_STEP.total_seconds()
    rounded = math.ceil(earliest.timestamp() / step) * step
    return datetime.fromtimestamp(rounded, tz=UTC)


def checkout_open(*, order: RepairOrder, base_url: str) -> str:
    """The absolute URL of an open checkout for a pending order: its current session if still
    open, else a new one. Retries reuse the provider's session (idempotency key); of two
    concurrent opens that made two sessions, one is kept and the other closed, so an order never
    has two payable checkouts."""
    if order.status != OrderStatus.PENDING:
        raise Conflict(f"This order is {order.status}; there is nothing to pay.")
    if order.expires_at <= timezone.now():
        raise Conflict("This order's reservation has expired; please book again.")
    gateway = get_gateway()
    previous = order.checkout_session_id
    if previous:
        session = gateway.fetch_checkout(previous)
        if session.status == "open":
            return urljoin(base_url, session.url)
        if session.status == "complete":
            raise Conflict("This order is paid; its confirmation is on its way.")
    success_url, cancel_url = return_urls(order, base_url)
    expires_at = checkout_expiry(order)
    session = gateway.create_checkout(
        CheckoutRequest(
            order_id=str(order.id),
            amount_minor=to_minor_units(order.total_amount, order.currency),
            currency=order.currency,
            description=f"{order.vendor_name}: {order.variant_name}",
            customer_email=order.customer_email,
            expires_at=expires_at,
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=(
                f"marketlink-checkout-{order.id}-{previous or 0}-{int(expires_at.timestamp())}"
            ),
        )
    )
    url = urljoin(base_url, session.url)
    stored = order_payment_columns_set(
        order_id=order.id,
        when={"status": OrderStatus.PENDING, "checkout_session_id": previous},
        checkout_session_id=session.id,
        checkout_url=url,
    )
    if not stored:
        order.refresh_from_db()
        if order.checkout_session_id != session.id:
            # Someone else's open (or a payment) got there first: ours must not stay payable.
            with contextlib.suppress(GatewayError):
                gateway.expire_checkout(session.id)
            return checkout_open(order=order, base_url=base_url)
    order.checkout_session_id, order.checkout_url = session.id, url
    return url


def checkout_begin_eagerly(*, order: RepairOrder, base_url: str) -> None:
    """The seed's behaviour (PAYMENT_LINK_MODE "eager"): open the checkout right after booking.
    If the provider fails, the order is cancelled and its unit returned before answering 502."""
    try:
        checkout_open(order=order, base_url=base_url)
    except GatewayError:
        order_transition(
            order_id=order.id,
            to=OrderStatus.CANCELLED,
            source=ChangeSource.API,
            expected=OrderStatus.PENDING,
            note="the payment provider failed at booking",
        )
        raise


def checkout_url_for_customer(*, order: RepairOrder, base_url: str) -> None:
    """``POST /orders/{id}/checkout/``: make sure the order's payment URL works now."""
    if order.status != OrderStatus.PENDING:
        raise Conflict(f"This order is {order.status}; there is nothing to pay.")
    if conf.get().PAYMENT_LINK_MODE == "eager":
        checkout_open(order=order, base_url=base_url)
    elif order.expires_at <= timezone.now():
        raise Conflict("This order's reservation has expired; please book again.")


def checkout_close(entry: OutboxEntry) -> Outcome:
    """The outbox's ``checkout_expiry`` handler: close the provider's checkout (the entry's
    subject) of a released order (cancelled, or its reservation lapsed), so the unit it no
    longer holds cannot be paid for. A payment that still gets through is a late payment."""
    order = RepairOrder.objects.filter(pk=entry.payload.get("order_id")).first()
    if order is not None and order.status not in RELEASED_STATUSES:
        return Done(f"order is {order.status}; its checkout stays")
    try:
        get_gateway().expire_checkout(entry.subject_id)
    except GatewayError as exc:
        return Failed(exc.message) if exc.answered else Retry(exc.message)
    return Done(f"checkout {entry.subject_id} closed")


def provider_says_paid(session_id: str) -> bool:
    """The page is public and may be reloaded: a "paid" answer (final) is remembered, and so,
    for a few seconds, is the provider being down, so a slow provider does not slow every reload.
    An "unpaid" answer is not, so the page shows a payment as soon as the provider knows it."""
    key = f"marketlink:checkout-paid:{session_id}"
    cached = cache.get(key)
    if cached is not None:
        return bool(cached)
    try:
        paid = get_gateway().fetch_checkout(session_id).payment_status == "paid"
    except GatewayError:
        cache.set(key, False, timeout=5)
        return False
    if paid:
        cache.set(key, True, timeout=3600)
    return paid
