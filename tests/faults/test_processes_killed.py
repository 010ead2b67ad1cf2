"""A gunicorn worker SIGKILLed mid-booking and mid-webhook, and the Huey consumer SIGKILLed
mid-invoice: retries and redeliveries converge, and the invoice goes out exactly once."""

from __future__ import annotations

import os
import signal
import uuid

from fault_rig import kill_one_worker
from fault_shop import becomes, book, customer, paid_at_provider, storm, variant
from invariants import assert_invariants
from live_site import wait_for

from marketlink.orders.models import RepairOrder
from marketlink.payments.models import Invoice, InvoiceStatus


def test_worker_killed_mid_booking_and_mid_webhook(rig):
    target = variant(20)
    buyers = [(customer(), str(uuid.uuid4())) for _ in range(8)]
    first = storm(len(buyers), lambda n: book(rig.site, *buyers[n][:1], target.id, buyers[n][1]),
                  lambda: kill_one_worker(rig.gunicorn))  # fmt: skip
    # 0: the connection was dropped with the worker. 503: a booking waited on the variant lock
    # the killed worker held (it lapses after LOCK_TTL) and was told to retry, in the envelope.
    assert {status for status, _ in first} <= {0, 201, 503}, first
    assert all(body["success"] is False for status, body in first if status == 503), first
    rig.workers_back()
    again = [book(rig.site, token, target.id, key) for token, key in buyers]
    assert {status for status, _ in again} <= {200, 201}, again
    assert len({body["data"]["id"] for _, body in again}) == len(buyers)
    assert RepairOrder.objects.filter(variant=target).count() == len(buyers)

    token, _ = buyers[0]
    order_id = again[0][1]["data"]["id"]
    events = paid_at_provider(rig, token, order_id)
    storm(len(events), lambda n: rig.standin.deliver(events[n], rig.webhook_url),
          lambda: kill_one_worker(rig.gunicorn))  # fmt: skip
    rig.workers_back()
    for event in events:  # Stripe redelivers what was not answered 2xx; here, all of it
        assert rig.deliver(event) == 200
    becomes(order_id, "processing")
    wait_for(lambda: Invoice.objects.filter(order_id=order_id, status="sent").exists(), 30,
               "the invoice")  # fmt: skip
    assert_invariants(standin=rig.standin)


def test_consumer_killed_mid_invoice_then_restarted(rig):
    """The consumer dies while the email is being sent (before the invoice's transaction
    commits). Huey took the task off the queue, so no consumer runs it again: the invoice is
    pending and untried, and ``marketlink invoices resend`` (as the periodic
    ``requeue_owed_invoices`` does past the grace period) has the restarted consumer send it,
    once."""
    token = customer()
    status, body = book(rig.site, token, variant(1).id)
    assert status == 201
    order_id = body["data"]["id"]
    hold = rig.folder / "hold"
    hold.touch()
    try:
        for event in paid_at_provider(rig, token, order_id):
            assert rig.deliver(event) == 200
        wait_for(lambda: list(rig.folder.glob("sending-*")), 30, "the invoice's send")
        os.kill(rig.huey.pid, signal.SIGKILL)
        rig.huey.wait(timeout=10)
    finally:
        hold.unlink()
    for marker in rig.folder.glob("sending-*"):
        marker.unlink()
    rig.start_huey()
    invoice = Invoice.objects.get(order_id=order_id)
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.PENDING, 0)

    done = rig.cli("invoices", "resend", order_id)

    assert done.returncode == 0, done.stderr
    wait_for(lambda: Invoice.objects.filter(order_id=order_id, status="sent").exists(), 60,
             "the invoice sent again")  # fmt: skip
    invoice.refresh_from_db()
    sent = [path for path in rig.outbox.iterdir() if invoice.number in path.read_text()]
    assert len(sent) == 1
    assert_invariants(standin=rig.standin)
