"""Reads for payments: the payment link a customer is given, finding an event's order, and what
needs staff's attention (invoices, refunds, disputes)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from marketlink import conf
from marketlink.exceptions import NotFound
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.payments.gateways.base import ProviderEvent
from marketlink.payments.models import (
    UNSETTLED_REFUND_STATUSES,
    Dispute,
    Invoice,
    InvoiceStatus,
    Refund,
    RefundKind,
)

LINK_SALT = "marketlink.payments.link"
# The invoice task's longest wait between two retries is about 21 minutes: a pending invoice
# untried for longer has no retry coming (its worker died, or the task was lost).
INVOICE_STUCK_AFTER = timedelta(minutes=30)


def payment_link_path(order: RepairOrder) -> str:
    """The stable, signed marketlink path that opens (or reopens) the order's checkout.

    Signed without a timestamp, so every read of the order shows the same URL; it is only
    honoured while the order is pending and its reservation lasts."""
    token = signing.Signer(salt=LINK_SALT).sign(str(order.id))
    return reverse("marketlink:payment_link", kwargs={"token": token})


def payment_url(order: RepairOrder, build_absolute_uri: Any) -> str | None:
    """What ``payment_url`` shows: a way to pay while the order is pending, else nothing."""
    if order.status != OrderStatus.PENDING:
        return None
    if conf.get().PAYMENT_LINK_MODE == "eager":
        return order.checkout_url or None
    return str(build_absolute_uri(payment_link_path(order)))


def order_for_link(token: str) -> RepairOrder:
    try:
        order_id = uuid.UUID(signing.Signer(salt=LINK_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        raise NotFound("This payment link is not valid.") from None
    order = RepairOrder.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("This payment link is not valid.")
    return order


def order_for_event(event: ProviderEvent) -> RepairOrder | None:
    """The order an event is about: by the order id marketlink gave the provider first, then by
    the provider ids we stored (a session, the order's payment, or a payment we refunded)."""
    if event.order_ref:
        try:
            order = _one(RepairOrder.objects.filter(pk=uuid.UUID(event.order_ref)))
        except ValueError:
            order = None
        if order is not None:
            return order
    if event.session_id:
        return _one(RepairOrder.objects.filter(checkout_session_id=event.session_id))
    intent = event.payment_intent_id
    if intent:
        return _one(RepairOrder.objects.filter(payment_intent_id=intent)) or _one(
            RepairOrder.objects.filter(refunds__payment_intent_id=intent)
        )
    return None


def _one(orders: QuerySet[RepairOrder]) -> RepairOrder | None:
    """The one order a unique key finds, without the ORDER BY ``first()`` would add."""
    return next(iter(orders.order_by()[:1]), None)


def refunds_needing_attention() -> QuerySet[Refund]:
    """Refunds that could not be made, failed, or wait on a person at the provider."""
    return Refund.objects.filter(needs_attention=True).select_related("order")


def refund_grace_period() -> timedelta:
    """How long a refund may go untouched before it is followed up (``REFUND_GRACE_PERIOD``):
    longer than an ask's retries take, so past it nothing is under way for it."""
    return timedelta(seconds=conf.get().REFUND_GRACE_PERIOD)


def refunds_to_follow_up(*, grace: timedelta | None = None) -> QuerySet[Refund]:
    """Refunds asked for, or pending at the provider, untouched for the grace period: the ask
    may have been lost (a flushed queue, a killed consumer), or the provider's last word never
    reached us. Shared by the periodic job, reconcile and doctor."""
    cutoff = timezone.now() - (refund_grace_period() if grace is None else grace)
    return Refund.objects.filter(
        status__in=UNSETTLED_REFUND_STATUSES, updated_at__lt=cutoff
    ).select_related("order")


def payment_given_back(payment_intent_id: str) -> bool:
    """Whether marketlink decided to give this payment back (a duplicate, or a late one that
    found no unit): such a payment never takes a unit and never pays its order, whatever its
    refund's status."""
    return Refund.objects.filter(
        payment_intent_id=payment_intent_id, kind__in=[RefundKind.DUPLICATE, RefundKind.LATE]
    ).exists()


def disputes_needing_attention() -> QuerySet[Dispute]:
    return Dispute.objects.filter(needs_attention=True).select_related("order")


def invoices_needing_attention(
    *, stuck_after: timedelta = INVOICE_STUCK_AFTER
) -> QuerySet[Invoice]:
    """Invoices no task will send by itself: the failed ones, and pending ones untried (or never
    tried) for ``stuck_after``."""
    return Invoice.objects.filter(Q(status=InvoiceStatus.FAILED) | _stuck_pending(stuck_after))


def _stuck_pending(stuck_after: timedelta) -> Q:
    cutoff = timezone.now() - stuck_after
    stuck = Q(last_attempt_at__lt=cutoff) | Q(last_attempt_at__isnull=True, created_at__lt=cutoff)
    return Q(status=InvoiceStatus.PENDING) & stuck


def invoice_grace_period() -> timedelta:
    """How long an unsent invoice may go untouched before it counts as stuck
    (``INVOICE_GRACE_PERIOD``, default 30 minutes: the invoice task's longest wait between two
    retries is about 21 minutes, so past it no retry is coming: its worker died, or the task
    was lost)."""
    return timedelta(seconds=conf.get().INVOICE_GRACE_PERIOD)


def _untouched_since(cutoff: datetime, path: str = "") -> Q:
    """An invoice nothing has happened to since ``cutoff``: written, tried and re-enqueued
    (each if ever) before it."""
    return (
        Q(**{f"{path}created_at__lt": cutoff})
        & (
            Q(**{f"{path}last_attempt_at__isnull": True})
            | Q(**{f"{path}last_attempt_at__lt": cutoff})
        )
        & (Q(**{f"{path}requeued_at__isnull": True}) | Q(**{f"{path}requeued_at__lt": cutoff}))
    )


def orders_owing_invoice(*, grace: timedelta | None = None) -> QuerySet[RepairOrder]:
    """Orders whose invoice is not sent and nothing is under way for it past the grace period,
    whatever their status: a pending or failed invoice untouched since, or an order that was
    paid (refunded since or not) with no invoice at all: its task was lost before it ever ran.
    Shared by reconcile and ``marketlink invoices resend --stuck``."""
    cutoff = timezone.now() - (invoice_grace_period() if grace is None else grace)
    unsent = Q(invoice__status__in=[InvoiceStatus.PENDING, InvoiceStatus.FAILED]) & (
        _untouched_since(cutoff, "invoice__")
    )
    lost = Q(invoice__isnull=True, paid_at__lt=cutoff)
    return RepairOrder.objects.filter(unsent | lost).select_related("invoice")
