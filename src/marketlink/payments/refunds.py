"""Refunds: asking the provider for money back, and following each refund until it settles.

Every refund marketlink asks for (an order's, a duplicate payment's, a late payment's) and every
refund it hears of (one made in the provider's dashboard) has a :class:`Refund` row. The row is
written before the provider is asked, so a refund that could not be made is never forgotten: it
stays ``requested`` with its attempts and last error, and is flagged for staff when the retries
run out. An order becomes ``refunded`` only when a refund of *its own* payment succeeded; a
pending refund leaves it paid until the provider says how it ended.

No function here holds a transaction or a lock across a call to the provider.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from marketlink.exceptions import Conflict
from marketlink.money import to_minor_units
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import TransitionRefused, order_transition
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import GatewayError
from marketlink.payments.models import (
    UNSETTLED_REFUND_STATUSES,
    Refund,
    RefundKind,
    RefundStatus,
)
from marketlink.payments.rules import (
    PAID_STATUSES,
    RELEASED_STATUSES,
    PermanentProblem,
    with_fresh_status,
)

logger = logging.getLogger(__name__)

# What the provider may say of a refund, as marketlink records it; anything else is kept pending.
KNOWN_STATUSES = frozenset(RefundStatus.values) - {RefundStatus.REQUESTED}
GAVE_UP = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def order_refund(*, order: RepairOrder, source: str = ChangeSource.API) -> RepairOrder:
    """Refund a paid order's payment in full. Idempotent: a refunded order, or one whose refund
    is pending at the provider, is returned as it is; the provider call carries a key stored
    with the refund, so a retry after a lost answer never refunds twice. The order becomes
    ``refunded`` (and a unit not yet used goes back) when the refund has succeeded."""
    if order.status == OrderStatus.REFUNDED:
        return order
    if order.status not in PAID_STATUSES:
        raise TransitionRefused(f"Only paid orders can be refunded; this one is {order.status}.")
    if not order.payment_intent_id:
        raise Conflict("The payment provider has not told us this order's payment id yet.")
    refund = refund_requested(
        order=order, payment_intent_id=order.payment_intent_id, kind=RefundKind.ORDER
    )
    if refund.status == RefundStatus.REQUESTED:
        refund_ask(refund=refund, source=source)
    order.refresh_from_db()
    return order


def refund_requested(*, order: RepairOrder, payment_intent_id: str, kind: str) -> Refund:
    """The refund of ``payment_intent_id``, recorded as asked for (before asking the provider).
    One that failed or was canceled is asked for again under a new idempotency key: the
    provider would answer the old key with the old failure."""
    base_key = f"marketlink-refund-{order.id}"
    if (
        kind == RefundKind.DUPLICATE
        or Refund.objects.filter(order=order, idempotency_key=base_key)
        .exclude(payment_intent_id=payment_intent_id)
        .exists()
    ):
        # Not the order's own payment (or a second late one): a key of its own, or the provider
        # would answer with the refund of the first.
        base_key = f"marketlink-refund-duplicate-{payment_intent_id}"
    defaults = {
        "order": order,
        "kind": kind,
        "amount_minor": to_minor_units(order.total_amount, order.currency),
        "currency": order.currency,
        "idempotency_key": base_key,
    }
    try:
        with transaction.atomic():
            refund, _ = Refund.objects.get_or_create(
                payment_intent_id=payment_intent_id, defaults=defaults
            )
    except IntegrityError:  # asked for concurrently
        refund = Refund.objects.get(payment_intent_id=payment_intent_id)
    if refund.status in GAVE_UP:
        again = Refund.objects.filter(pk=refund.pk, status=refund.status).update(
            status=RefundStatus.REQUESTED,
            idempotency_key=f"{base_key}-after-{refund.provider_refund_id or refund.attempts}",
            needs_attention=False,
            updated_at=timezone.now(),
        )
        refund.refresh_from_db()
        if again:
            logger.info(
                "refund of %s asked for again after it failed",
                payment_intent_id,
                extra={
                    "event": "refund.requested_again",
                    "order_id": order.id,
                    "refund_id": refund.pk,
                    "payment_intent_id": payment_intent_id,
                },
            )
    return refund


def refund_ask(*, refund: Refund, source: str) -> str:
    """Ask the provider for a requested refund and record its answer. Raises ``GatewayError``
    (502) when the provider cannot be reached; the attempt and the error stay on the row."""
    Refund.objects.filter(pk=refund.pk).update(attempts=F("attempts") + 1)
    try:
        result = get_gateway().refund(
            payment_intent_id=refund.payment_intent_id,
            amount_minor=refund.amount_minor,
            idempotency_key=refund.idempotency_key,
        )
    except GatewayError as exc:
        Refund.objects.filter(pk=refund.pk).update(last_error=exc.message[:2000])
        logger.warning(
            "refund %s of order %s: the provider failed",
            refund.pk,
            refund.order_id,
            extra={
                "event": "refund.provider_failed",
                "order_id": refund.order_id,
                "refund_id": refund.pk,
            },
        )
        raise
    return refund_settled(
        refund_pk=refund.pk, status=result.status, provider_refund_id=result.id, source=source
    )


def refund_gave_up(*, refund_pk: uuid.UUID | str, error: str) -> None:
    """The refund could not be made and nothing will try again by itself: flag it for staff."""
    Refund.objects.filter(pk=refund_pk, status=RefundStatus.REQUESTED).update(
        needs_attention=True, last_error=error[:2000], updated_at=timezone.now()
    )
    logger.error(
        "refund %s could not be made and needs attention: %s",
        refund_pk,
        error,
        extra={"event": "refund.gave_up", "refund_id": refund_pk},
    )


def refund_seen(
    *,
    order: RepairOrder,
    payment_intent_id: str | None,
    provider_refund_id: str | None,
    status: str,
    amount_minor: int | None,
    source: str,
) -> str:
    """The provider told us of a refund (ours, or one made in its dashboard), and how it stands."""
    refund = None
    if provider_refund_id:
        refund = Refund.objects.filter(provider_refund_id=provider_refund_id).first()
    if refund is None and payment_intent_id:
        refund = Refund.objects.filter(payment_intent_id=payment_intent_id).first()
    if refund is None:
        if not payment_intent_id:
            raise PermanentProblem("a refund without a payment intent")
        own = order.payment_intent_id in (None, payment_intent_id)
        expected = to_minor_units(order.total_amount, order.currency)
        if amount_minor != expected:
            raise PermanentProblem(
                f"partial refund of {amount_minor}: marketlink refunds whole orders"
            )
        try:
            with transaction.atomic():
                refund = Refund.objects.create(
                    order=order,
                    kind=RefundKind.ORDER if own else RefundKind.EXTERNAL,
                    payment_intent_id=payment_intent_id,
                    provider_refund_id=provider_refund_id,
                    amount_minor=expected,
                    currency=order.currency,
                    idempotency_key="",
                )
        except IntegrityError:
            refund = Refund.objects.get(payment_intent_id=payment_intent_id)
    return refund_settled(
        refund_pk=refund.pk, status=status, provider_refund_id=provider_refund_id, source=source
    )


def refund_settled(
    *, refund_pk: uuid.UUID | str, status: str, provider_refund_id: str | None, source: str
) -> str:
    """Record what the provider says of a refund; a success of the order's own payment makes
    the order refunded. Answers that arrive twice, or late (a ``pending`` after ``succeeded``),
    change nothing."""
    status = status if status in KNOWN_STATUSES else RefundStatus.PENDING
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("order").get(pk=refund_pk)
        if refund.status in {RefundStatus.SUCCEEDED, *GAVE_UP} and status in (
            UNSETTLED_REFUND_STATUSES
        ):
            return f"refund {refund.provider_refund_id} already {refund.status}"
        refund.status = status
        refund.provider_refund_id = provider_refund_id or refund.provider_refund_id
        refund.needs_attention = status in GAVE_UP or status == RefundStatus.REQUIRES_ACTION
        refund.last_error = f"the provider says the refund {status}" if status in GAVE_UP else ""
        refund.save()
        _report_status(refund)
        if status == RefundStatus.SUCCEEDED:
            return _money_returned(refund, source)
    if status in GAVE_UP:
        return f"the refund {status} at the provider; flagged for staff"
    return f"refund {status} at the provider; waiting for it to settle"


def _report_status(refund: Refund) -> None:
    logger.log(
        logging.ERROR if refund.status in GAVE_UP else logging.INFO,
        "refund %s of order %s %s",
        refund.provider_refund_id,
        refund.order_id,
        refund.status,
        extra={
            "event": f"refund.{refund.status}",
            "order_id": refund.order_id,
            "refund_id": refund.pk,
            "provider_refund_id": refund.provider_refund_id,
            "payment_intent_id": refund.payment_intent_id,
        },
    )


def _money_returned(refund: Refund, source: str) -> str:
    order = refund.order
    paying = order.payment_intent_id
    if paying and paying != refund.payment_intent_id:
        return f"refund of another payment ({refund.payment_intent_id}); the order's own stands"
    if paying is None and order.status not in {OrderStatus.PENDING, *RELEASED_STATUSES}:
        return "refund of a payment that is not the order's; the order stands"
    return mark_refunded(
        order=order,
        refund_id=refund.provider_refund_id,
        payment_intent_id=refund.payment_intent_id,
        source=source,
    )


def mark_refunded(
    *, order: RepairOrder, refund_id: str | None, payment_intent_id: str, source: str
) -> str:
    """Record that the order's payment (``payment_intent_id``) was given back, whatever state
    the order was in: a pending one was paid, then refunded, before we heard of the payment."""

    def act(order: RepairOrder) -> str:
        status = order.status
        if status == OrderStatus.REFUNDED:
            return "already refunded"
        fields: dict[str, Any] = {"refund_id": refund_id} if refund_id else {}
        if not order.payment_intent_id:
            fields["payment_intent_id"] = payment_intent_id
        if status == OrderStatus.PENDING:
            order_transition(
                order_id=order.id,
                to=OrderStatus.PAID,
                source=source,
                expected=status,
                known=order,
                note="refund seen before the payment confirmation",
                paid_at=timezone.now(),
                payment_intent_id=fields.pop("payment_intent_id", order.payment_intent_id),
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

    return with_fresh_status(order, act)
