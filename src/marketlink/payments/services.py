"""Writes for payments: opening checkouts, the webhook pipeline, refunds.

No function here holds a database transaction or a lock across a call to the payment provider:
provider calls happen first (or after commit, from tasks), and their results are written after.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from marketlink import conf
from marketlink.exceptions import (
    Conflict,
    InvalidInput,
    MarketlinkError,
    NotFound,
    ServiceUnavailable,
)
from marketlink.money import to_minor_units
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import NoStockToRetake, TransitionRefused, order_transition
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import (
    CHECKOUT_EXPIRY_STEP,
    MIN_CHECKOUT_LIFE,
    CheckoutRequest,
    GatewayError,
)
from marketlink.payments.models import EventStatus, PaymentEvent
from marketlink.payments.selectors import order_for_event

logger = logging.getLogger(__name__)

PAID_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.COMPLETED})
RELEASED_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED})


class PermanentProblem(Exception):
    """An event that processing again will not fix by itself (flagged for staff, answered 2xx)."""


# --- Opening a checkout ------------------------------------------------------------------------


def _redirect_urls(order: RepairOrder, base_url: str) -> tuple[str, str]:
    config = conf.get()
    # Wherever the host mounted marketlink's URLconf, not a hard-coded "/api/".
    site = base_url.rstrip("/")
    own_success = site + reverse("marketlink:checkout_succeeded", kwargs={"id": order.id})
    own_cancel = site + reverse("marketlink:checkout_cancelled", kwargs={"id": order.id})
    success = (config.SUCCESS_URL or own_success + "?session_id={CHECKOUT_SESSION_ID}").replace(
        "{order_id}", str(order.id)
    )
    cancel = (config.CANCEL_URL or own_cancel).replace("{order_id}", str(order.id))
    return success, cancel


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
    success_url, cancel_url = _redirect_urls(order, base_url)
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
    stored = RepairOrder.objects.filter(
        pk=order.id, status=OrderStatus.PENDING, checkout_session_id=previous
    ).update(checkout_session_id=session.id, checkout_url=url, updated_at=timezone.now())
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


def checkout_expire(*, order: RepairOrder) -> None:
    """Close the provider's checkout of a cancelled order, best effort: a payment that still
    gets through is handled as a late payment."""
    if not order.checkout_session_id:
        return
    try:
        get_gateway().expire_checkout(order.checkout_session_id)
    except GatewayError:
        logger.warning("could not expire checkout of cancelled order %s", order.id)


def payment_state(*, order_id: Any) -> dict[str, Any]:
    """For the redirect pages: the order's status, and whether the provider already says the
    checkout is paid (shown to the customer sooner, never acted on without the webhook)."""
    order = RepairOrder.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    provider_says_paid = order.status in PAID_STATUSES
    if order.status == OrderStatus.PENDING and order.checkout_session_id:
        provider_says_paid = _provider_says_paid(order.checkout_session_id)
    return {"order_id": order.id, "status": order.status, "provider_says_paid": provider_says_paid}


def _provider_says_paid(session_id: str) -> bool:
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


# --- The webhook pipeline ----------------------------------------------------------------------


def webhook_receive(*, payload: bytes, signature: str) -> PaymentEvent:
    """Verify, keep and process one delivery. Raises InvalidInput (400) for anything that is not
    a genuine event, ServiceUnavailable (503, so the provider retries) for transient failures."""
    gateway = get_gateway()
    if not signature:
        raise InvalidInput("The Stripe-Signature header is missing.")
    try:
        event = gateway.verify_event(payload, signature)
    except ValueError:  # genuinely signed, but not JSON (or not UTF-8)
        raise InvalidInput("The event body is not valid JSON.") from None
    event_id, event_type = _event_parts(event)
    storable = _without_nul(event) if b"\\u0000" in payload else event
    record = _event_record(event_id, event_type, storable, gateway.name)
    return event_process(record_id=record.pk)


def _without_nul(value: Any) -> Any:
    """The event as it can be stored: PostgreSQL refuses NUL characters in JSON text, and a
    stored event must never turn into a 500 that the provider would retry forever."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _event_parts(event: Any) -> tuple[str, str]:
    try:
        event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
    except (KeyError, TypeError):
        raise InvalidInput("The event has no id, type or data.object.") from None
    if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)):
        raise InvalidInput("The event's id, type or data.object has the wrong type.")
    if not 0 < len(event_id) <= 255 or len(event_type) > 100:
        raise InvalidInput("The event's id or type is too long.")
    return event_id, event_type


def _event_record(event_id: str, event_type: str, event: Any, gateway: str) -> PaymentEvent:
    try:
        with transaction.atomic():
            record, _ = PaymentEvent.objects.get_or_create(
                event_id=event_id,
                defaults={"event_type": event_type, "payload": event, "gateway": gateway},
            )
    except IntegrityError:  # a concurrent duplicate stored it first
        record = PaymentEvent.objects.get(event_id=event_id)
    return record


def event_process(
    *, record_id: Any, source: str = ChangeSource.WEBHOOK, force: bool = False
) -> PaymentEvent:
    """Process a stored event unless it already was. The event's row lock makes concurrent
    duplicates wait, then find it processed; a failed event is processed again. ``force``
    processes a processed event again (operators' replay: the handlers are idempotent)."""
    transient: MarketlinkError | None = None
    with transaction.atomic():
        record = PaymentEvent.objects.select_for_update().get(pk=record_id)
        if record.status in (EventStatus.PROCESSED, EventStatus.IGNORED) and not force:
            return record
        record.attempts += 1
        try:
            with transaction.atomic():
                record.status, record.result = _dispatch(record, source)
            record.last_error, record.needs_attention = "", False
            record.processed_at = timezone.now()
        except PermanentProblem as exc:
            record.status, record.last_error, record.needs_attention = (
                EventStatus.FAILED,
                str(exc),
                True,
            )
            logger.error("event %s needs attention: %s", record.event_id, exc)
        except (ServiceUnavailable, GatewayError) as exc:
            record.status, record.last_error = EventStatus.FAILED, f"transient: {exc.message}"
            transient = exc
        record.save()
    if transient is not None:
        raise ServiceUnavailable(f"Could not process the event now: {transient.message}")
    return record


def _dispatch(record: PaymentEvent, source: str) -> tuple[str, str]:
    handler = HANDLERS.get(record.event_type)
    if handler is None:
        return EventStatus.IGNORED, f"{record.event_type} is not handled"
    obj = record.payload["data"]["object"]
    order = order_for_event(obj)
    if order is None:
        raise PermanentProblem("no order matches this event")
    record.order = order
    return EventStatus.PROCESSED, handler(order, obj, source)


def _remember_ids(order: RepairOrder, obj: dict[str, Any]) -> dict[str, str]:
    """Provider ids this event teaches us, to find the order by later events and to refund."""
    ids: dict[str, str] = {}
    intent = _intent_of(obj)
    if intent and not order.payment_intent_id:
        ids["payment_intent_id"] = intent
    if obj.get("object") == "checkout.session" and not order.checkout_session_id:
        ids["checkout_session_id"] = obj["id"]
    if ids:
        RepairOrder.objects.filter(pk=order.pk).update(**ids)
        for name, value in ids.items():
            setattr(order, name, value)
    return ids


def _intent_of(obj: dict[str, Any]) -> str | None:
    """The payment intent an event's object is, or belongs to."""
    intent = obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    return intent if isinstance(intent, str) and intent else None


def _with_fresh_status(order: RepairOrder, act: Callable[[RepairOrder], str]) -> str:
    """Run ``act``; if another writer changed the order's status under it, look again (twice)."""
    for _ in range(3):
        try:
            return act(order)
        except TransitionRefused:
            order.refresh_from_db()
    raise ServiceUnavailable("The order kept changing while this event was processed.")


def _mark_paid(order: RepairOrder, obj: dict[str, Any], amount: Any, source: str) -> str:
    currency = str(obj.get("currency") or "").lower()
    expected = to_minor_units(order.total_amount, order.currency)
    if amount != expected or currency != order.currency:
        raise PermanentProblem(
            f"amount mismatch: the event says {amount} {currency or '?'}, "
            f"the order is {expected} {order.currency}"
        )
    _remember_ids(order, obj)
    intent = _intent_of(obj)
    # The payment that pays the order is the one a refund must target, whatever intent an
    # earlier (declined, or refunded-late) attempt left on the order.
    paying = {"payment_intent_id": intent} if intent else {}

    def act(order: RepairOrder) -> str:
        status = order.status
        if status in PAID_STATUSES or status == OrderStatus.REFUNDED:
            if intent and order.payment_intent_id and intent != order.payment_intent_id:
                # The customer paid twice (two checkouts, or a retry): money is never kept twice,
                # also when the order's own payment was refunded meanwhile.
                from marketlink.payments.tasks import refund_duplicate_payment

                order_id = str(order.id)
                transaction.on_commit(
                    lambda: refund_duplicate_payment(order_id, intent), robust=True
                )
                return f"a second payment ({intent}) for a {status} order: refund queued"
            if status == OrderStatus.REFUNDED:
                return "the order was already refunded; nothing to do"
            return "already paid"
        note = "payment confirmed"
        if status in RELEASED_STATUSES:
            note = "payment arrived after the reservation ended; unit taken again"
            try:
                _paid(order, status, source, note, **paying)
            except NoStockToRetake:
                from marketlink.payments.tasks import refund_late_payment

                order_id = str(order.id)
                transaction.on_commit(lambda: refund_late_payment(order_id, intent), robust=True)
                return (
                    "payment arrived after the reservation ended and no unit is left: refund queued"
                )
            return note
        _paid(order, status, source, note, **paying)
        return note

    return _with_fresh_status(order, act)


def _paid(order: RepairOrder, status: str, source: str, note: str, **fields: Any) -> None:
    from marketlink.payments.tasks import send_invoice

    order_transition(
        order_id=order.id,
        to=OrderStatus.PAID,
        source=source,
        expected=status,
        note=note,
        paid_at=timezone.now(),
        **fields,
    )
    order_id = str(order.id)
    transaction.on_commit(lambda: send_invoice(order_id), robust=True)


def mark_refunded(*, order: RepairOrder, refund_id: str | None, source: str) -> str:
    """Record that the order's payment was refunded, whatever state the order was in."""

    def act(order: RepairOrder) -> str:
        status = order.status
        fields = {"refund_id": refund_id} if refund_id and not order.refund_id else {}
        if status == OrderStatus.REFUNDED:
            return "already refunded"
        if status == OrderStatus.PENDING:
            # The refund arrived before the payment's own event: it was paid, then refunded.
            order_transition(
                order_id=order.id,
                to=OrderStatus.PAID,
                source=source,
                expected=status,
                note="refund seen before the payment confirmation",
                paid_at=timezone.now(),
            )
            status = OrderStatus.PAID
        order_transition(
            order_id=order.id,
            to=OrderStatus.REFUNDED,
            source=source,
            expected=status,
            note="payment refunded",
            **fields,
        )
        return "refunded"

    return _with_fresh_status(order, act)


def _on_session_completed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    if obj.get("payment_status") != "paid":
        _remember_ids(order, obj)
        return "checkout completed; waiting for the asynchronous payment"
    return _mark_paid(order, obj, obj.get("amount_total"), source)


def _on_async_succeeded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    return _mark_paid(order, obj, obj.get("amount_total"), source)


def _on_intent_succeeded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    return _mark_paid(order, obj, obj.get("amount_received", obj.get("amount")), source)


def _release_if_pending(order: RepairOrder, to: str, source: str, note: str) -> str:
    def act(order: RepairOrder) -> str:
        if order.status != OrderStatus.PENDING:
            return f"order is {order.status}; nothing to release"
        order_transition(
            order_id=order.id, to=to, source=source, expected=OrderStatus.PENDING, note=note
        )
        return note

    return _with_fresh_status(order, act)


def _on_async_failed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    _remember_ids(order, obj)
    return _release_if_pending(order, OrderStatus.FAILED, source, "asynchronous payment failed")


def _on_session_expired(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    if order.checkout_session_id and order.checkout_session_id != obj.get("id"):
        return "an earlier checkout session expired; the order has a newer one"
    if order.expires_at > timezone.now():
        # The session id stays: the next open finds it expired and makes a new session under a
        # key derived from it (cleared, the first key would bring the dead session back).
        RepairOrder.objects.filter(pk=order.pk, checkout_session_id=obj.get("id")).update(
            checkout_url=""
        )
        return "checkout expired before the reservation; the payment link makes a new one"
    return _release_if_pending(order, OrderStatus.CANCELLED, source, "checkout session expired")


def _on_intent_failed(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    _remember_ids(order, obj)
    return "a payment attempt was declined; the customer may retry while the reservation lasts"


def _on_charge_refunded(order: RepairOrder, obj: dict[str, Any], source: str) -> str:
    _remember_ids(order, obj)
    intent = _intent_of(obj)
    if intent and order.payment_intent_id and intent != order.payment_intent_id:
        return f"refund of a duplicate payment ({intent}); the order's own payment stands"
    refunded = obj.get("amount_refunded")
    if refunded != to_minor_units(order.total_amount, order.currency):
        raise PermanentProblem(f"partial refund of {refunded}: marketlink refunds whole orders")
    refunds = (obj.get("refunds") or {}).get("data") or []
    refund_id = refunds[0].get("id") if refunds and isinstance(refunds[0], dict) else None
    return mark_refunded(order=order, refund_id=refund_id, source=source)


HANDLERS: dict[str, Callable[[RepairOrder, dict[str, Any], str], str]] = {
    "checkout.session.completed": _on_session_completed,
    "checkout.session.async_payment_succeeded": _on_async_succeeded,
    "checkout.session.async_payment_failed": _on_async_failed,
    "checkout.session.expired": _on_session_expired,
    "payment_intent.succeeded": _on_intent_succeeded,
    "payment_intent.payment_failed": _on_intent_failed,
    "charge.refunded": _on_charge_refunded,
}


# --- Reconciliation ---------------------------------------------------------------------------


RECONCILED_STATUSES = frozenset({OrderStatus.PENDING, *RELEASED_STATUSES})


def order_reconcile(*, order: RepairOrder, source: str = ChangeSource.CLI) -> str:
    """Ask the provider about an unpaid order's checkout and apply what a lost webhook would
    have: a paid session marks the order paid (amount checked; a released order takes its unit
    again or the payment is refunded), an expired one whose reservation lapsed cancels it."""
    if order.status not in RECONCILED_STATUSES or not order.checkout_session_id:
        return "nothing to check"
    session = get_gateway().fetch_checkout(order.checkout_session_id)
    if session.payment_status == "paid":
        obj = {
            "object": "checkout.session",
            "id": session.id,
            "payment_intent": session.payment_intent_id,
            "currency": session.currency,
        }
        with transaction.atomic():
            try:
                return _mark_paid(order, obj, session.amount_minor, source)
            except PermanentProblem as exc:
                return f"needs attention: {exc}"
    if session.status == "expired" and order.expires_at <= timezone.now():
        return _release_if_pending(order, OrderStatus.CANCELLED, source, "checkout expired")
    return f"the provider says {session.status}/{session.payment_status}; nothing to do"


# --- Refunds -----------------------------------------------------------------------------------


def order_refund(*, order: RepairOrder, source: str = ChangeSource.API) -> RepairOrder:
    """Refund a paid order in full through its gateway and return its unit. Idempotent: a
    refunded order is returned as it is, and the provider call carries a key derived from the
    order, so a retry never refunds twice."""
    if order.status == OrderStatus.REFUNDED:
        return order
    if order.status not in PAID_STATUSES:
        raise TransitionRefused(f"Only paid orders can be refunded; this one is {order.status}.")
    refund_id = _refund_at_gateway(order)
    mark_refunded(order=order, refund_id=refund_id, source=source)
    order.refresh_from_db()
    return order


def _refund_at_gateway(order: RepairOrder) -> str:
    if not order.payment_intent_id:
        raise Conflict("The payment provider has not told us this order's payment id yet.")
    return get_gateway().refund(
        payment_intent_id=order.payment_intent_id,
        amount_minor=to_minor_units(order.total_amount, order.currency),
        idempotency_key=f"marketlink-refund-{order.id}",
    )


def duplicate_payment_refund(*, order: RepairOrder, payment_intent_id: str) -> str:
    """Refund a second payment for an order that was already paid with another one."""
    if payment_intent_id == order.payment_intent_id:
        return "that is the order's own payment; nothing to refund"
    refund_id = get_gateway().refund(
        payment_intent_id=payment_intent_id,
        amount_minor=to_minor_units(order.total_amount, order.currency),
        idempotency_key=f"marketlink-refund-duplicate-{payment_intent_id}",
    )
    logger.warning(
        "order %s: duplicate payment %s refunded (%s)", order.id, payment_intent_id, refund_id
    )
    return f"duplicate payment refunded: {refund_id}"


def late_payment_refund(*, order: RepairOrder, payment_intent_id: str | None = None) -> str:
    """Refund a payment that arrived after its reservation ended with no unit left.

    ``payment_intent_id`` is the late payment's own: if another payment pays the order by now
    (a restock let it take a unit), this one is a duplicate and goes back all the same."""
    own = order.payment_intent_id
    if payment_intent_id and own and payment_intent_id != own:
        return duplicate_payment_refund(order=order, payment_intent_id=payment_intent_id)
    if order.status not in RELEASED_STATUSES:
        return f"order is {order.status}; no late payment to refund"
    refund_id = _refund_at_gateway(order)
    return mark_refunded(order=order, refund_id=refund_id, source=ChangeSource.TASK)
