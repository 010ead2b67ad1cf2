"""The migrations of refunds (one row per provider refund) and of the outbox, run over rows the
old code left: refunds keep what they were, a refunded order says how much went back, and what
was in flight as a Huey task (an invoice not sent, a refund asked for) is owed in the outbox."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from order_helpers import new_order

from marketlink.orders.models import RepairOrder
from marketlink.outbox.models import OutboxEntry
from marketlink.payments.models import Refund

BEFORE = [
    ("marketlink_payments", "0005_invoice_requeued_at"),
    ("marketlink_orders", "0004_status_change_actor"),
    ("marketlink_outbox", None),
]


@pytest.mark.django_db(transaction=True)
def test_refunds_and_work_in_flight_are_carried_over():
    refunded, asked, unsent, never_invoiced, sent, failed = (new_order() for _ in range(6))
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state([node for node in BEFORE if node[1]]).apps
    orders = old.get_model("marketlink_orders", "RepairOrder")
    refunds = old.get_model("marketlink_payments", "Refund")
    invoices = old.get_model("marketlink_payments", "Invoice")
    now = timezone.now()
    for order, status in ((refunded, "refunded"), (asked, "processing"), (unsent, "processing"),
                          (never_invoiced, "paid"), (sent, "processing"),
                          (failed, "processing")):  # fmt: skip
        orders.objects.filter(pk=order.pk).update(
            status=status, paid_at=now, payment_intent_id=f"pi_{order.pk.hex[:12]}"
        )
    for order, status, attempts in ((refunded, "succeeded", 1), (asked, "requested", 0)):
        refunds.objects.create(
            order_id=order.pk, kind="order", payment_intent_id=f"pi_{order.pk.hex[:12]}",
            provider_refund_id=f"re_{order.pk.hex[:12]}" if attempts else None,
            amount_minor=2999, currency="usd", status=status, attempts=attempts,
            idempotency_key=f"marketlink-refund-{order.pk}",
        )  # fmt: skip
    for order, status in ((refunded, "sent"), (asked, "sent"), (unsent, "pending"), (sent, "sent"),
                          (failed, "failed")):  # fmt: skip
        invoices.objects.create(order_id=order.pk, number=f"ML-{order.pk.hex[:8]}", status=status)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    done = Refund.objects.get(order_id=refunded.pk)
    assert (done.status, done.succeeded_at is not None) == ("succeeded", True)
    assert Refund.objects.get(order_id=asked.pk).first_asked_at is None
    amounts = dict(RepairOrder.objects.values_list("pk", "amount_refunded"))
    assert (str(amounts[refunded.pk]), str(amounts[asked.pk])) == ("29.99", "0.00")
    owed = set(OutboxEntry.objects.values_list("dedupe_key", flat=True))
    assert owed == {
        f"invoice:{unsent.pk}",
        f"invoice:{never_invoiced.pk}",
        f"invoice:{failed.pk}",
        f"refund:{Refund.objects.get(order_id=asked.pk).pk}",
    }
    gave_up = OutboxEntry.objects.get(dedupe_key=f"invoice:{failed.pk}")
    assert (gave_up.status, gave_up.needs_attention) == ("failed", True)
