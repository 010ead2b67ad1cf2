"""Enqueueing an order's invoice task again, once: for reconcile, the periodic job and
``marketlink invoices resend``.

The re-enqueue is recorded on the invoice (``requeued_at``) in the transaction that decides it,
under the invoice's row lock, so a second run (or a concurrent one) finds it in flight and
enqueues nothing more until the grace period has passed. The task itself still sends at most
once (``invoices.invoice_send``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from marketlink.orders.models import RepairOrder
from marketlink.payments import tasks
from marketlink.payments.invoices import invoice_number
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.payments.selectors import invoice_grace_period


class Requeue(StrEnum):
    ENQUEUED = "enqueued again"
    ALREADY_SENT = "already sent"
    IN_FLIGHT = "enqueued again recently; still in flight"
    NOT_OWED = "never paid: no invoice owed"


def invoice_requeue(*, order: RepairOrder, force: bool = False) -> Requeue:
    """Enqueue the invoice task of ``order`` again, unless its invoice was sent or was enqueued
    again within the grace period; ``force`` does both anyway (an operator's decision: a sent
    invoice is then sent a second time)."""
    if order.paid_at is None and not Invoice.objects.filter(order=order).exists():
        return Requeue.NOT_OWED
    now = timezone.now()
    with transaction.atomic():
        # A paid order whose task was lost has no invoice yet: the row is what records this.
        Invoice.objects.bulk_create(
            [Invoice(order=order, number=invoice_number(order))], ignore_conflicts=True
        )
        invoice = Invoice.objects.select_for_update().get(order=order)
        if invoice.status == InvoiceStatus.SENT and not force:
            return Requeue.ALREADY_SENT
        recently = invoice.requeued_at and invoice.requeued_at > now - invoice_grace_period()
        if recently and not force:
            return Requeue.IN_FLIGHT
        previous = invoice.requeued_at
        invoice.requeued_at = now
        if invoice.status == InvoiceStatus.SENT:
            invoice.status = InvoiceStatus.PENDING
        invoice.save(update_fields=["requeued_at", "status"])
        order_id = str(order.pk)
        transaction.on_commit(lambda: _enqueue(order_id, now, previous))
    return Requeue.ENQUEUED


def _enqueue(order_id: str, stamp: datetime, previous: datetime | None) -> None:
    """The task, after the commit. If the queue cannot take it (Redis down), the record of the
    re-enqueue is taken back, so the next run tries again, and the error reaches the caller."""
    try:
        tasks.send_invoice(order_id)
    except Exception:
        Invoice.objects.filter(order__pk=order_id, requeued_at=stamp).update(requeued_at=previous)
        raise
