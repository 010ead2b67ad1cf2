"""An app host killed mid-storm (every process SIGKILLed, its cable pulled), the scheduler's
host at that: nothing a client was told is lost, and the other host carries on. No consumer
takes the scheduler over by itself (Huey has no election): the operator starts one, and doctor
sees it, and sees two when the dead host comes back with its own. Last, the operator's recovery
(``marketlink reconcile``, ``marketlink invoices resend --stuck``), then the shared invariants
over everything the suite did, failover included."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter

from fault_shop import customer
from invariants import assert_invariants
from live_site import wait_for

from marketlink.orders.models import RepairOrder
from marketlink.payments.models import Invoice, InvoiceStatus, PaymentEvent
from marketlink.testing.factories import VariantFactory

STOCK = 60
CUSTOMERS = 70  # each books 3 times: the per-variant limit, and under the 8/min throttle
THREADS = 6
GRACE = 60  # INVOICE_GRACE_PERIOD in scale_settings


def _scheduler(rig) -> str:
    return str(rig.doctor("scheduler")["detail"])


def test_an_app_host_killed_mid_storm_loses_nothing_and_the_scheduler_is_the_operators(rig):
    app1, app2 = rig.app("app1"), rig.app("app2")
    scheduler_pid = app1.huey.pid
    assert _scheduler(rig) == f"One scheduler beats: host scale-app1 pid {scheduler_pid}."
    target = VariantFactory(stock=STOCK)
    tokens = [customer() for _ in range(CUSTOMERS)]
    bookings = [(token, str(uuid.uuid4())) for token in tokens for _ in range(3)]
    events = rig.paid_events(8)

    delivered: list[int] = []
    killed: list[float] = []

    def fault() -> None:
        time.sleep(2)
        app1.kill()
        killed.append(time.monotonic())
        delivered.extend(rig.deliver(event) for event in events)  # Stripe, meanwhile

    answers = rig.booking_storm(bookings, target.id, THREADS, fault)
    last_payment = time.monotonic()

    # Cut connections went to the other host with their key; a booking waiting on the variant
    # lock the killed host held got 503 (it lapses by its TTL), in the envelope, and a client
    # asks again with its key, as the API says.
    statuses = Counter(answer.status for answer in answers)
    assert set(statuses) <= {200, 201, 409, 503}, statuses
    assert all(a.body["success"] is False for a in answers if a.status == 503)
    after = Counter(a.status for a in answers if a.sent > killed[0] and a.host == "app2")
    assert after[201] + after[409] > 0, f"app2 did not carry on: {after}"
    final = {a.key: (a.status, a.body) for a in answers if a.status != 503}
    for answer in answers:
        if answer.status == 503:
            status, body, _ = rig.book(answer.token, target.id, answer.key)
            final[answer.key] = (status, body)
    booked = [body["data"]["id"] for status, body in final.values() if status in (200, 201)]
    assert len(booked) == len(set(booked)) == STOCK  # one order per key, every unit sold once
    orders = set(map(str, RepairOrder.objects.filter(variant=target).values_list("id", flat=True)))
    assert orders == set(booked)
    assert set(delivered) == {200}, delivered
    processed = PaymentEvent.objects.filter(event_id__in=[e["id"] for e in events])
    assert processed.count() == len(events)

    # The scheduler's host is gone, and no other consumer took over: the one scheduler doctor
    # knows is the dead one (doctor says "no scheduler" once it is 3 minutes old).
    assert _scheduler(rig) == f"One scheduler beats: host scale-app1 pid {scheduler_pid}."
    # The operator's step: one consumer with its scheduler, on a live host.
    app2.start_consumer(rig.env, periodic=True)
    now_one = f"One scheduler beats: host scale-app2 pid {app2.huey.pid}."
    wait_for(lambda: _scheduler(rig) == now_one, 60, "app2's scheduler")
    # The dead host comes back as its unit says, with a scheduler: two of them now.
    app1.revive(rig.env, periodic=True)
    two = wait_for(lambda: _two_schedulers(rig), 120, "doctor to see two schedulers")
    assert {f"host scale-app1 pid {app1.huey.pid}", f"host scale-app2 pid {app2.huey.pid}"} == two
    app1.start_consumer(rig.env, periodic=False)  # the operator's fix

    # The operator's recovery, once what was lost counts as owed (the grace period).
    time.sleep(max(0.0, last_payment + GRACE + 2 - time.monotonic()))
    reconciled = rig.cli("reconcile", "--since", "1h", "--json")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    resent = rig.cli("invoices", "resend", "--stuck", "--json")
    assert resent.returncode == 0, resent.stdout + resent.stderr
    print(f"\nreconcile: {json.loads(reconciled.stdout)['summary']}")
    print(f"invoices resend --stuck: {json.loads(resent.stdout)['summary']}")
    paid = RepairOrder.objects.filter(paid_at__isnull=False)
    wait_for(
        lambda: (
            not Invoice.objects.filter(order__in=paid).exclude(status=InvoiceStatus.SENT)
            and Invoice.objects.filter(order__in=paid).count() == paid.count()
        ),
        120,
        "every paid order's invoice sent",
    )
    assert_invariants(standin=rig.standin)
    mail = "".join(path.read_text() for path in rig.outbox.iterdir())
    mail = re.sub(r"\r?\n[ \t]+", " ", mail)  # headers unfolded: a long Subject is folded
    numbers = Invoice.objects.values_list("number", flat=True)
    sent = {number: mail.count(f"Subject: Invoice {number} ") for number in numbers}
    assert sent == dict.fromkeys(numbers, 1)  # each invoice emailed once


def _two_schedulers(rig) -> set[str] | None:
    detail = _scheduler(rig)
    if not detail.startswith("2 schedulers beat within 3 minutes"):
        return None
    return set(re.findall(r"host \S+ pid \d+", detail))
