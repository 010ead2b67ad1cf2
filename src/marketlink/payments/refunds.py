"""Refunds marketlink decides to make: an order's (asked through the API), a duplicate
payment's and a late payment's; and asking again until the provider has answered.

Every refund marketlink asks for has a :class:`Refund` row, written before the provider is asked,
so a refund that could not be made is never forgotten: it stays ``requested`` with its attempts
and last error, and is asked again (:func:`refund_follow_up`) once it has gone untouched for
``REFUND_GRACE_PERIOD``, whatever became of the task that was to ask. What the provider answers
is recorded by ``refund_records``, as its events are.

No function here holds a transaction or a lock across a call to the provider.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from marketlink.exceptions import Conflict
from marketlink.money import to_minor_units
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import TransitionRefused
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import GatewayError, RefundRequest
from marketlink.payments.models import UNSETTLED_REFUND_STATUSES, Refund, RefundKind, RefundStatus
from marketlink.payments.refund_records import GAVE_UP, refunds_record
from marketlink.payments.rules import PAID_STATUSES

logger = logging.getLogger(__name__)

# Stripe keeps an idempotency key 24 hours: an ask under an older key could make a second
# refund, so the refund is looked up by its reference first.
KEY_MEMORY = timedelta(hours=24)


def order_refund(*, order: RepairOrder, source: str = ChangeSource.API) -> RepairOrder:
    """Refund what is left of a paid order's payment. Idempotent: a refunded order, or one
    whose refund is pending at the provider, is returned as it is; the provider call carries a
    key stored with the refund, so a retry after a lost answer never refunds twice. After a
    partial refund (one made in the provider's dashboard) it asks for the remainder. The order
    becomes ``refunded`` (and a unit not yet used goes back) when the refunds have succeeded."""
    if order.status == OrderStatus.REFUNDED:
        return order
    if order.status not in PAID_STATUSES:
        raise TransitionRefused(f"Only paid orders can be refunded; this one is {order.status}.")
    intent = order.payment_intent_id
    if not intent:
        raise Conflict("The payment provider has not told us this order's payment id yet.")
    # What the provider already gave back (a dashboard refund whose events are still on their
    # way, say) is recorded first, so the remainder asked for is what is really left.
    refunds_record(
        order=order,
        payment_intent_id=intent,
        seen=get_gateway().fetch_refunds(intent),
        source=source,
    )
    order.refresh_from_db()
    if order.status == OrderStatus.REFUNDED:
        return order
    refund = _remainder_requested(order, intent)
    if refund is not None and refund.status == RefundStatus.REQUESTED:
        refund_ask(refund=refund, source=source)
    order.refresh_from_db()
    return order


def _new_refund(order: RepairOrder, intent: str, kind: str, amount_minor: int) -> Refund:
    pk = uuid.uuid4()
    return Refund.objects.create(
        id=pk,
        order=order,
        kind=kind,
        payment_intent_id=intent,
        amount_minor=amount_minor,
        currency=order.currency,
        # One key per refund: each row is one refund at the provider.
        idempotency_key=f"marketlink-refund-{pk}",
    )


def _remainder_requested(order: RepairOrder, intent: str) -> Refund | None:
    """The order's refund to ask for: one asked before whose answer never came, else a new one
    for what no refund covers yet (None: pending or succeeded refunds cover it all)."""
    with transaction.atomic():
        RepairOrder.objects.select_for_update().filter(pk=order.pk).first()
        rows = list(Refund.objects.filter(order=order, payment_intent_id=intent))
        waiting = [row for row in rows if row.status == RefundStatus.REQUESTED]
        if waiting:
            return waiting[0]
        covered = sum(
            row.amount_minor
            for row in rows
            if row.status in UNSETTLED_REFUND_STATUSES or row.succeeded_at is not None
        )
        remainder = to_minor_units(order.total_amount, order.currency) - covered
        if remainder <= 0:
            return None
        return _new_refund(order, intent, RefundKind.ORDER, remainder)


def refund_requested(*, order: RepairOrder, payment_intent_id: str, kind: str) -> Refund:
    """The refund of a payment marketlink must not keep (``kind``: a duplicate or a late one),
    recorded as asked for, before the provider is asked. One that is under way or done is
    returned as it is; after one failed or was canceled, a new one is recorded."""
    with transaction.atomic():
        RepairOrder.objects.select_for_update().filter(pk=order.pk).first()
        live = (
            Refund.objects.filter(order=order, payment_intent_id=payment_intent_id, kind=kind)
            .exclude(status__in=GAVE_UP)
            .first()
        )
        if live is not None:
            return live
        amount = to_minor_units(order.total_amount, order.currency)
        return _new_refund(order, payment_intent_id, kind, amount)


def refund_ask(*, refund: Refund, source: str) -> str:
    """Ask the provider for a requested refund and record its answer. Raises ``GatewayError``
    (502) when the provider cannot be reached or refuses; a refusal is final (the provider
    would answer the same key the same way): the refund is marked failed and flagged."""
    Refund.objects.filter(pk=refund.pk).update(
        attempts=F("attempts") + 1, first_asked_at=Coalesce(F("first_asked_at"), timezone.now())
    )
    order = refund.order
    try:
        answer = get_gateway().refund(
            RefundRequest(
                payment_intent_id=refund.payment_intent_id,
                amount_minor=refund.amount_minor,
                idempotency_key=refund.idempotency_key,
                reference=str(refund.pk),
                order_id=str(refund.order_id),
            )
        )
    except GatewayError as exc:
        refused = exc.answered
        Refund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
            last_error=exc.message[:2000],
            updated_at=timezone.now(),
            **({"status": RefundStatus.FAILED, "needs_attention": True} if refused else {}),
        )
        logger.log(
            logging.ERROR if refused else logging.WARNING,
            "refund %s of order %s: the provider %s",
            refund.pk,
            refund.order_id,
            "refused it" if refused else "failed",
            extra={
                "event": "refund.refused" if refused else "refund.provider_failed",
                "order_id": refund.order_id,
                "refund_id": refund.pk,
            },
        )
        raise
    return refunds_record(
        order=order, payment_intent_id=refund.payment_intent_id, seen=[answer], source=source
    )


def refund_gave_up(*, refund_pk: uuid.UUID | str, error: str) -> None:
    """The retries of one ask are spent: flag the refund for staff. It is still asked again
    after the grace period (:func:`refund_follow_up`): money owed back is never dropped."""
    Refund.objects.filter(pk=refund_pk, status=RefundStatus.REQUESTED).update(
        needs_attention=True, last_error=error[:2000], updated_at=timezone.now()
    )
    logger.error(
        "refund %s could not be made and needs attention: %s",
        refund_pk,
        error,
        extra={"event": "refund.gave_up", "refund_id": refund_pk},
    )


def refund_follow_up(*, refund: Refund, source: str) -> str:
    """One step further for a refund that went quiet. The provider's refunds of its payment are
    read and recorded first (a pending refund is only read again, never asked again; a requested
    one whose answer was lost is found by its reference); one still requested after that was
    never made, and is asked again."""
    listed = get_gateway().fetch_refunds(refund.payment_intent_id)
    said = refunds_record(
        order=refund.order, payment_intent_id=refund.payment_intent_id, seen=listed, source=source
    )
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now())
    return f"{said}; {refund_ask_again(refund_pk=refund.pk, source=source)}"


def refund_ask_again(*, refund_pk: uuid.UUID, source: str) -> str:
    """Ask again for a refund the provider's listing did not show: it was never made. A key
    older than the provider's memory of it starts its day anew (the lookup just done is what
    makes asking under it safe)."""
    refund = Refund.objects.select_related("order").filter(pk=refund_pk).first()
    if refund is None or refund.status != RefundStatus.REQUESTED:
        return "nothing to ask again"
    asked = refund.first_asked_at
    if asked is not None and asked < timezone.now() - KEY_MEMORY:
        Refund.objects.filter(pk=refund.pk).update(first_asked_at=None)
    try:
        return "asked again: " + refund_ask(refund=refund, source=source)
    except GatewayError as exc:
        return f"asked again, the provider failed: {exc.message}"
