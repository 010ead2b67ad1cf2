"""Invoices and refund asks move onto the outbox. What was in flight as a Huey task is owed as an
outbox entry instead: every invoice not sent (pending, or a paid order with none yet) and every
refund asked for and not made. An invoice that had failed for good gets a failed entry, flagged,
so doctor, reconcile and ``invoices resend --stuck`` see it as before. ``Invoice.requeued_at``
(the old re-enqueue's record) goes."""

import uuid

from django.db import migrations
from django.utils import timezone


def owe_what_was_in_flight(apps, schema_editor):
    Invoice = apps.get_model("marketlink_payments", "Invoice")
    Refund = apps.get_model("marketlink_payments", "Refund")
    RepairOrder = apps.get_model("marketlink_orders", "RepairOrder")
    OutboxEntry = apps.get_model("marketlink_outbox", "OutboxEntry")
    now = timezone.now()
    pending = Invoice.objects.filter(status="pending").values_list("order_id", flat=True)
    never_written = RepairOrder.objects.filter(paid_at__isnull=False, invoice__isnull=True)
    owed = [("invoice", order_id) for order_id in pending]
    owed += [("invoice", order_id) for order_id in never_written.values_list("pk", flat=True)]
    requested = Refund.objects.filter(status="requested").values_list("pk", flat=True)
    owed += [("refund", refund_id) for refund_id in requested]
    failed = Invoice.objects.filter(status="failed").values_list("order_id", "last_error")
    entries = [_entry(OutboxEntry, kind, subject, now) for kind, subject in owed]
    for order_id, error in failed:
        entry = _entry(OutboxEntry, "invoice", order_id, now)
        entry.status, entry.needs_attention, entry.last_error = "failed", True, error
        entries.append(entry)
    OutboxEntry.objects.bulk_create(entries, ignore_conflicts=True)


def _entry(model, kind, subject, now):
    return model(
        id=uuid.uuid4(),
        kind=kind,
        subject_id=str(subject),
        dedupe_key=f"{kind}:{subject}",
        payload={},
        due_at=now,
    )


class Migration(migrations.Migration):

    dependencies = [
        ("marketlink_payments", "0006_refunds_per_provider_refund"),
        ("marketlink_outbox", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(owe_what_was_in_flight, migrations.RunPython.noop),
        migrations.RemoveField(model_name="invoice", name="requeued_at"),
    ]
