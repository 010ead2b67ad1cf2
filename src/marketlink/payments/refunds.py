"""Refunds marketlink decides to make: an order's (asked through the API), a duplicate
payment's and a late payment's; and asking again until the provider has answered.

Every refund marketlink asks for has a :class:`Refund` row, written before the provider is asked,
with an outbox entry (kind ``refund``) owing the ask, in one transaction: the drainer asks
(:func:`refund_outbox_handle`), with a back-off while the provider fails, and nothing is lost
with a queue or a worker. A pending refund whose last word never reached us is read again
(:func:`refund_follow_up`) once untouched for ``REFUND_GRACE_PERIOD``. What the provider answers
is recorded by ``refund_records``, as its events are.

No function here holds a transaction or a lock across a call to the provider.
"""

from __future__ import annotations

import dataclasses
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
from marketlink.orders.transitions import TransitionRefused
from marketlink.outbox.models import EntryStatus, OutboxEntry
from marketlink.outbox.registry import Done, Failed, Outcome, Retry
from marketlink.outbox.selectors import entries_of
from marketlink.outbox.services import outbox_retry, outbox_run_now, outbox_write
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import GatewayError, ProviderRefund, RefundRequest
from marketlink.payments.models import UNSETTLED_REFUND_STATUSES, Refund, RefundKind, RefundStatus
from marketlink.payments.refund_records import GAVE_UP, refunds_record
from marketlink.payments.rules import PAID_STATUSES, PermanentProblem

logger = logging.getLogger(__name__)

REFUND_KIND = "refund"
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
    try:
        refunds_record(
            order=order,
            payment_intent_id=intent,
            seen=get_gateway().fetch_refunds(intent),
            source=source,
        )
    except PermanentProblem as exc:
        raise Conflict(
            f"The payment provider reports what marketlink cannot apply: {exc}."
        ) from exc
    order.refresh_from_db()
    if order.status == OrderStatus.REFUNDED:
        return order
    refund = _remainder_requested(order, intent, source)
    if refund is not None:
        # Asked now, in this request, so it answers with the outcome.
        outbox_run_now(kind=REFUND_KIND, subject_id=refund.pk)
        refund.refresh_from_db()
        if refund.status == RefundStatus.REQUESTED:
            _not_made_now(refund)
    order.refresh_from_db()
    return order


def _not_made_now(refund: Refund) -> None:
    """Why the API's ask of ``refund`` did not end with an answer: refused (502, flagged),
    asked right now by a drainer (409: look again shortly), or the provider unreachable (502;
    the outbox asks again)."""
    if refund.needs_attention:
        raise GatewayError(f"{refund.last_error} The refund is flagged for staff.")
    entry = entries_of(REFUND_KIND, refund.pk).first()
    if entry is not None and entry.status == EntryStatus.RUNNING:
        raise Conflict("This refund is being asked for right now; look at the order again shortly.")
    raise GatewayError(
        f"The payment provider could not be asked for the refund; it is asked again shortly "
        f"({refund.last_error or 'no answer'})."
    )


def _new_refund(
    order: RepairOrder, intent: str, kind: str, amount_minor: int, *, source: str, wake: bool
) -> Refund:
    """The refund's row and the outbox entry owing its ask, in the caller's transaction (which
    ``source`` the order's history names when the ask refunds it)."""
    pk = uuid.uuid4()
    refund = Refund.objects.create(
        id=pk,
        order=order,
        kind=kind,
        payment_intent_id=intent,
        amount_minor=amount_minor,
        currency=order.currency,
        # One key per refund: each row is one refund at the provider.
        idempotency_key=f"marketlink-refund-{pk}",
    )
    outbox_write(kind=REFUND_KIND, subject_id=pk, payload={"source": source}, wake=wake)
    return refund


def _remainder_requested(order: RepairOrder, intent: str, source: str) -> Refund | None:
    """The order's refund to ask for: one asked before whose answer never came, else a new one
    for what no refund covers yet (None: pending or succeeded refunds cover it all)."""
    with transaction.atomic():
        RepairOrder.objects.select_for_update().filter(pk=order.pk).first()
        rows = list(Refund.objects.filter(order=order, payment_intent_id=intent))
        waiting = [row for row in rows if row.status == RefundStatus.REQUESTED]
        if waiting:
            # Asked before, no answer yet: its entry is asked again now.
            waiting_entry = entries_of(REFUND_KIND, waiting[0].pk).values_list("pk", flat=True)
            outbox_retry(ids=list(waiting_entry), wake=False)
            return waiting[0]
        covered = sum(
            row.amount_minor
            for row in rows
            if row.status in UNSETTLED_REFUND_STATUSES or row.succeeded_at is not None
        )
        remainder = to_minor_units(order.total_amount, order.currency) - covered
        if remainder <= 0:
            return None
        return _new_refund(order, intent, RefundKind.ORDER, remainder, source=source, wake=False)


def refund_requested(*, order: RepairOrder, payment_intent_id: str, kind: str) -> Refund:
    """The refund of a payment marketlink must not keep (``kind``: a duplicate or a late one),
    recorded as asked for with the outbox entry owing the ask, in the caller's transaction (the
    event's that decided it). One that is under way or done is returned as it is; after one
    failed or was canceled, a new one is recorded."""
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
        return _new_refund(
            order, payment_intent_id, kind, amount, source=ChangeSource.TASK, wake=True
        )


def refund_ask(*, refund: Refund, source: str) -> str:
    """Ask the provider for a requested refund and record its answer. Raises ``GatewayError``
    (502) when the provider cannot be reached or refuses. A refusal (``answered``) leaves the
    refund asked for, flagged for staff, under a fresh idempotency key: the provider keeps its
    refusal under the old one, and what a person decides next (``marketlink outbox retry``,
    asking through the API again) must reach it anew."""
    now = timezone.now()
    Refund.objects.filter(pk=refund.pk).update(
        attempts=F("attempts") + 1, first_asked_at=Coalesce(F("first_asked_at"), now)
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
        fresh_key = {
            "needs_attention": True,
            "idempotency_key": f"marketlink-refund-{refund.pk}-{refund.attempts + 1}",
            "first_asked_at": None,
        }
        Refund.objects.filter(pk=refund.pk, status=RefundStatus.REQUESTED).update(
            last_error=exc.message[:2000], updated_at=now, **(fresh_key if refused else {})
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


def refund_gave_up(entry: OutboxEntry, error: str) -> None:
    """The outbox gave up asking (its retries spent, or the provider refused): the refund is
    flagged for staff. Money owed back is never dropped silently."""
    Refund.objects.filter(pk=entry.subject_id, status=RefundStatus.REQUESTED).update(
        needs_attention=True, last_error=error[:2000], updated_at=timezone.now()
    )
    logger.error(
        "refund %s could not be made and needs attention: %s",
        entry.subject_id,
        error,
        extra={"event": "refund.gave_up", "refund_id": entry.subject_id},
    )


def refund_outbox_handle(entry: OutboxEntry) -> Outcome:
    """The outbox's ``refund`` handler: ask for a requested refund. Under a key the provider may
    have forgotten (older than a day), the refund is looked up by its reference first and
    recorded if it was made."""
    refund = Refund.objects.select_related("order").filter(pk=entry.subject_id).first()
    if refund is None or refund.status != RefundStatus.REQUESTED:
        return Done("nothing to ask for")
    source = entry.payload.get("source", ChangeSource.TASK)
    try:
        asked = refund.first_asked_at
        if asked is not None and asked < timezone.now() - KEY_MEMORY:
            found = _made_for(refund, get_gateway().fetch_refunds(refund.payment_intent_id))
            if found:
                return Done(
                    refunds_record(
                        order=refund.order,
                        payment_intent_id=refund.payment_intent_id,
                        seen=found,
                        source=source,
                    )
                )
            # Never made: ask anew, counting the key's day from now.
            Refund.objects.filter(pk=refund.pk).update(first_asked_at=None)
        return Done(refund_ask(refund=refund, source=source))
    except GatewayError as exc:
        return Failed(exc.message) if exc.answered else Retry(exc.message)


def _made_for(refund: Refund, listed: tuple[ProviderRefund, ...]) -> list[ProviderRefund]:
    """The provider's refund made for ``refund``: the one carrying its reference; for an ask
    from before references were sent (its key does not name the row), a refund of its amount
    that carries none and that no row records, taken for it."""
    found = [seen for seen in listed if seen.reference == str(refund.pk)]
    if found or str(refund.pk) in refund.idempotency_key:
        return found
    recorded = set(
        Refund.objects.filter(payment_intent_id=refund.payment_intent_id)
        .exclude(provider_refund_id=None)
        .values_list("provider_refund_id", flat=True)
    )
    unclaimed = [
        seen
        for seen in listed
        if seen.reference is None
        and seen.amount_minor == refund.amount_minor
        and seen.id not in recorded
    ]
    return [dataclasses.replace(seen, reference=str(refund.pk)) for seen in unclaimed[:1]]


def refund_follow_up(*, refund: Refund, source: str) -> str:
    """A pending refund whose last word never reached us (its events lost): the provider's
    refunds of its payment are read and recorded. It is never asked again: it was made."""
    listed = get_gateway().fetch_refunds(refund.payment_intent_id)
    Refund.objects.filter(pk=refund.pk).update(updated_at=timezone.now())
    return refunds_record(
        order=refund.order, payment_intent_id=refund.payment_intent_id, seen=listed, source=source
    )
