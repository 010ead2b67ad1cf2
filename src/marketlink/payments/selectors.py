"""Reads for payments: the payment link a customer is given, finding an event's order, and what
needs staff's attention (invoices, refunds, disputes)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from marketlink import conf
from marketlink.exceptions import NotFound
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.outbox.selectors import entries_failed, entries_overdue
from marketlink.payments.gateways.base import ProviderEvent
from marketlink.payments.models import (
    UNSETTLED_REFUND_STATUSES,
    Dispute,
    Invoice,
    InvoiceStatus,
    Refund,
    RefundKind,
)
from marketlink.payments.receivers import INVOICE_KIND

LINK_SALT = "marketlink.payments.link"


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


def invoices_needing_attention() -> QuerySet[Invoice]:
    """Invoices nothing will send by itself: the failed ones, and those of orders whose invoice
    nothing is sending (``orders_owing_invoice``)."""
    return Invoice.objects.filter(
        Q(status=InvoiceStatus.FAILED) | Q(order__in=orders_owing_invoice().values("pk"))
    )


def invoice_grace_period() -> timedelta:
    """How long an owed invoice may wait to be sent before it counts as stuck
    (``INVOICE_GRACE_PERIOD``, default 30 minutes): the drainer runs every minute, and an entry
    waiting for its retry is not due, so one due for that long has no drainer running it (no
    consumer, or no scheduler)."""
    return timedelta(seconds=conf.get().INVOICE_GRACE_PERIOD)


def orders_owing_invoice(*, grace: timedelta | None = None) -> QuerySet[RepairOrder]:
    """Orders whose invoice nothing is sending: its outbox entry due for longer than the grace
    period, or failed for good, and the invoice not sent. Shared by reconcile, doctor and
    ``marketlink invoices resend --stuck``."""
    by = invoice_grace_period() if grace is None else grace
    stuck = entries_overdue(by=by, kinds=[INVOICE_KIND]) | entries_failed(kinds=[INVOICE_KIND])
    order_ids = [uuid.UUID(subject) for subject in stuck.values_list("subject_id", flat=True)]
    return (
        RepairOrder.objects.filter(pk__in=order_ids)
        .exclude(invoice__status=InvoiceStatus.SENT)
        .select_related("invoice")
    )
