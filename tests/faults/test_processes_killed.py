"""A gunicorn worker SIGKILLed mid-booking and mid-webhook, and the Huey consumer SIGKILLed in the
middle of a batch of invoices: retries, redeliveries and the outbox converge, and each invoice
goes out once, with no command run by hand."""

from __future__ import annotations

import os
import signal
import uuid

from fault_rig import kill_one_worker
from fault_shop import becomes, book, customer, invariants_hold, paid_at_provider, storm, variant
from live_site import wait_for

from marketlink.orders.models import RepairOrder
from marketlink.payments.models import Invoice


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
    invariants_hold(rig)


def test_consumer_killed_mid_batch_then_restarted(rig):
    """The consumer's drainer dies while a batch of invoices is going out (the first message
    held at the mail server). Its claims lapse, and the restarted consumer's periodic drain
    sends every invoice the batch owed, each once: only the message in flight could go twice,
    and here it never reached the server."""
    orders = []
    hold = rig.folder / "hold"
    hold.touch()
    try:
        for _ in range(4):
            token = customer()
            status, body = book(rig.site, token, variant(1).id)
            assert status == 201
            orders.append(body["data"]["id"])
            for event in paid_at_provider(rig, token, orders[-1]):
                assert rig.deliver(event) == 200
        wait_for(lambda: list(rig.folder.glob("sending-*")), 30, "the batch's first send")
        os.kill(rig.huey.pid, signal.SIGKILL)
        rig.huey.wait(timeout=10)
    finally:
        hold.unlink()
    for marker in rig.folder.glob("sending-*"):
        marker.unlink()
    assert Invoice.objects.filter(order_id__in=orders, status="sent").count() < len(orders)

    rig.start_huey()  # nothing else: no resend, no reconcile

    wait_for(
        lambda: Invoice.objects.filter(order_id__in=orders, status="sent").count() == len(orders),
        150,
        "every invoice of the batch sent",
    )
    mail = [path.read_text() for path in rig.outbox.iterdir()]
    for invoice in Invoice.objects.filter(order_id__in=orders):
        assert sum(invoice.number in text for text in mail) == 1, invoice.number
    invariants_hold(rig)
