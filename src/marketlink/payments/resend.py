"""Sending an order's invoice again, now, in this process: for ``marketlink invoices resend``
and reconcile, so a consumer that is down stops neither.

The invoice's outbox entry is made due again (or written, for a paid order that has none: one
from before the outbox) and run right after the decision commits. A dry run's rollback takes the
decision back, and with it the sending: nothing is sent. An invoice that was sent is sent again
only when told to (``force``), and an entry a drainer holds right now is left to it.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import connection, transaction
from django.utils import timezone

from marketlink.orders.models import RepairOrder
from marketlink.outbox.models import EntryStatus, OutboxEntry
from marketlink.outbox.services import outbox_run_now, outbox_write
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.payments.receivers import INVOICE_KIND


class Resend(StrEnum):
    SENT = "sent"
    NOT_SENT = "tried, not sent (its last error is on the invoice)"
    SENDING = "to be sent once committed"
    ALREADY_SENT = "already sent"
    IN_FLIGHT = "a drainer is sending it now"
    NOT_OWED = "never paid: no invoice owed"


def invoice_resend(*, order: RepairOrder, force: bool = False) -> Resend:
    """Send ``order``'s invoice now unless it was sent (``force``: anyway, a second one)."""
    invoice = Invoice.objects.filter(order=order).first()
    if order.paid_at is None and invoice is None:
        return Resend.NOT_OWED
    if invoice is not None and invoice.status == InvoiceStatus.SENT and not force:
        return Resend.ALREADY_SENT
    now = timezone.now()
    with transaction.atomic():
        entry = (
            OutboxEntry.objects.select_for_update()
            .filter(dedupe_key=f"{INVOICE_KIND}:{order.pk}")
            .first()
        )
        held = entry is not None and entry.status == EntryStatus.RUNNING
        if entry is None:
            owed = {"force": force}
            outbox_write(kind=INVOICE_KIND, subject_id=order.pk, payload=owed, wake=False)
        elif held and entry.claimed_until is not None and entry.claimed_until > now:
            return Resend.IN_FLIGHT
        else:
            OutboxEntry.objects.filter(pk=entry.pk).update(
                status=EntryStatus.PENDING,
                due_at=now,
                attempts=0,
                needs_attention=False,
                payload={**entry.payload, "force": force},
                updated_at=now,
            )
        transaction.on_commit(lambda: outbox_run_now(kind=INVOICE_KIND, subject_id=order.pk))
    if connection.in_atomic_block:  # a dry run's transaction: nothing is sent before it ends
        return Resend.SENDING
    sent = Invoice.objects.filter(order=order, status=InvoiceStatus.SENT, sent_at__gte=now)
    return Resend.SENT if sent.exists() else Resend.NOT_SENT
