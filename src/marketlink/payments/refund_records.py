"""What the provider says of refunds, recorded: one ``Refund`` row per provider refund, and what
the refunds of an order's own payment make of the order.

A refund the provider reports is matched to its row by the reference marketlink sent with it
(the row's id, in the request's metadata) first, then by the provider's refund id; only a refund
that matches neither is new to marketlink (made in the provider's dashboard) and gets a row of
its own, kind ``external``. A row is settled only by what is said about its own refund.

The order follows its own payment's refunds: it is ``refunded`` (and gives its unit back) once
the refunds that succeeded reach its total. Less than that is a partial refund: recorded,
flagged for staff, and the order keeps its status. Refunds of other payments (a duplicate, a
late payment given back) never count toward it.

Everything for one order happens under the order's row lock, so two reports of the same
refund (its event and the answer to the request that made it) are recorded one after the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.money import from_minor_units, to_minor_units
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.services import order_payment_columns_set
from marketlink.orders.transitions import order_transition
from marketlink.payments.gateways.base import ProviderRefund
from marketlink.payments.models import (
    UNSETTLED_REFUND_STATUSES,
    Refund,
    RefundKind,
    RefundStatus,
)
from marketlink.payments.rules import RELEASED_STATUSES, PermanentProblem, with_fresh_status
from marketlink.payments.selectors import payment_given_back

logger = logging.getLogger(__name__)

# What the provider may say of a refund, as marketlink records it; anything else is kept pending.
KNOWN_STATUSES = frozenset(RefundStatus.values) - {RefundStatus.REQUESTED}
GAVE_UP = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def refunds_record(
    *,
    order: RepairOrder,
    payment_intent_id: str | None,
    seen: Iterable[ProviderRefund],
    source: str,
) -> str:
    """Record each refund the provider reports for ``payment_intent_id`` (a payment of
    ``order``), then let the order follow its own payment's refunds. A refund in another
    currency than the order's is a permanent problem: nothing is recorded."""
    if not payment_intent_id:
        raise PermanentProblem("a refund without a payment intent")
    seen = tuple(seen)
    for refund in seen:
        if refund.currency and refund.currency.lower() != order.currency:
            raise PermanentProblem(
                f"refund {refund.id} is in {refund.currency.lower()}, the order in "
                f"{order.currency}: nothing recorded"
            )
    with transaction.atomic():
        order = RepairOrder.objects.select_for_update().get(pk=order.pk)
        said = [_settle(_row_for(order, payment_intent_id, refund), refund) for refund in seen]
        said.append(_order_follows(order, payment_intent_id, source))
    return "; ".join(part for part in said if part) or "no refund reported"


def _row_for(order: RepairOrder, intent: str, refund: ProviderRefund) -> Refund:
    """The row ``refund`` is about: marketlink's (by the reference it sent), a known refund (by
    the provider's id), or a new ``external`` one. A row that already has a provider id is never
    taken for another refund."""
    rows = Refund.objects.select_for_update()
    reference = _uuid(refund.reference)
    if reference is not None:
        ours = rows.filter(pk=reference, order=order, payment_intent_id=intent).first()
        if ours is not None and ours.provider_refund_id in (None, refund.id):
            return ours
    if refund.id:
        known = rows.filter(provider_refund_id=refund.id).first()
        if known is not None:
            if known.order_id != order.pk:
                raise PermanentProblem(f"refund {refund.id} belongs to another order")
            return known
    if not refund.id or refund.amount_minor is None:
        raise PermanentProblem("a refund without an id or an amount")
    return Refund.objects.create(
        order=order,
        kind=RefundKind.EXTERNAL,
        payment_intent_id=intent,
        provider_refund_id=refund.id,
        amount_minor=refund.amount_minor,
        currency=(refund.currency or order.currency).lower(),
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _settle(row: Refund, refund: ProviderRefund) -> str:
    """Move ``row`` to what the provider says. ``failed`` and ``canceled`` are final; a
    succeeded refund only moves on to ``failed`` (Stripe allows it), which is flagged; late
    answers (a ``pending`` after ``succeeded``) change nothing."""
    status = refund.status if refund.status in KNOWN_STATUSES else RefundStatus.PENDING
    name = refund.id or row.provider_refund_id or str(row.pk)
    row.provider_refund_id = row.provider_refund_id or refund.id
    if row.status in GAVE_UP or (row.status == RefundStatus.SUCCEEDED and status != "failed"):
        row.save(update_fields=["provider_refund_id", "updated_at"])
        return f"refund {name} already {row.status}"
    if row.status == RefundStatus.SUCCEEDED:
        row.last_error = (
            "the provider reported this refund failed after it had succeeded: the money may "
            "not have reached the customer; the order stays refunded"
        )
        row.needs_attention = True
    else:
        row.needs_attention = status in GAVE_UP or status == RefundStatus.REQUIRES_ACTION
        row.last_error = f"the provider says the refund {status}" if status in GAVE_UP else ""
    row.status = status
    if status == RefundStatus.SUCCEEDED:
        row.succeeded_at = timezone.now()
    row.save()
    _report_status(row)
    if row.needs_attention:
        return f"refund {name} {status} at the provider; flagged for staff"
    if status in UNSETTLED_REFUND_STATUSES:
        return f"refund {name} {status} at the provider; waiting for it to settle"
    return f"refund {name} {status}"


def _report_status(refund: Refund) -> None:
    logger.log(
        logging.ERROR if refund.needs_attention else logging.INFO,
        "refund %s of order %s %s",
        refund.provider_refund_id or refund.pk,
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


def own_payment(order: RepairOrder, intent: str) -> str | None:
    """The order's own payment, as far as a refund of ``intent`` can tell: none if ``intent`` is
    being given back (a duplicate, a late one: never the order's, whatever the order recorded
    of it while it was in flight); else the payment that paid it; or, for an order not known to
    be paid yet (pending, or released before its payment arrived), ``intent`` itself."""
    if payment_given_back(intent):
        return None
    if order.payment_intent_id:
        return order.payment_intent_id
    if order.status in {OrderStatus.PENDING, *RELEASED_STATUSES}:
        return intent
    return None


def _order_follows(order: RepairOrder, intent: str, source: str) -> str:
    own = own_payment(order, intent)
    if own != intent:
        return f"a refund of another payment ({intent}); the order's own stands"
    rows = list(Refund.objects.filter(order=order, payment_intent_id=own))
    refunded_now = sum(row.amount_minor for row in rows if row.status == RefundStatus.SUCCEEDED)
    refunded_ever = sum(row.amount_minor for row in rows if row.succeeded_at is not None)
    amount = from_minor_units(refunded_now, order.currency)
    if order.amount_refunded != amount:
        order_payment_columns_set(order_id=order.pk, when={}, amount_refunded=amount)
        order.amount_refunded = amount
    total = to_minor_units(order.total_amount, order.currency)
    succeeded = [row for row in rows if row.status == RefundStatus.SUCCEEDED]
    if refunded_ever >= total:
        _whole_amount_back(rows)
        last = max(succeeded or rows, key=lambda row: row.succeeded_at or row.created_at)
        return mark_refunded(
            order=order, refund_id=last.provider_refund_id, payment_intent_id=own, source=source
        )
    partial = [row.pk for row in succeeded if not row.needs_attention]
    if not partial:
        return ""
    Refund.objects.filter(pk__in=partial).update(
        needs_attention=True,
        last_error=(
            f"partial refund: {amount} of {order.total_amount} {order.currency.upper()} "
            "given back; the order keeps its status (a refund through marketlink asks for the "
            "remainder)"
        ),
    )
    logger.warning(
        "order %s: partly refunded (%s of %s)",
        order.pk,
        amount,
        order.total_amount,
        extra={"event": "refund.partial", "order_id": order.pk, "payment_intent_id": own},
    )
    return f"partly refunded ({amount} of {order.total_amount}); flagged for staff"


def _whole_amount_back(rows: list[Refund]) -> None:
    """Once the whole amount went back, what was flagged on the way is answered: a partial
    refund, a refund that failed before another made it. An ask never made is no longer owed.
    A refund that succeeded and then failed stays flagged: that money may not have arrived."""
    answered = [
        row.pk
        for row in rows
        if row.status == RefundStatus.SUCCEEDED
        or (row.status in GAVE_UP and row.succeeded_at is None)
    ]
    Refund.objects.filter(pk__in=answered).update(needs_attention=False)
    Refund.objects.filter(
        pk__in=[row.pk for row in rows if row.status == RefundStatus.REQUESTED]
    ).update(
        status=RefundStatus.CANCELED,
        needs_attention=False,
        last_error="not made: the payment was given back by other refunds",
        updated_at=timezone.now(),
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
