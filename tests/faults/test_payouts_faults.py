"""Exactly one transfer per order, ever, with real processes (gunicorn, the Huey consumer, the
``marketlink`` command) on the rig's PostgreSQL and Redis, and the money invariant after each
case: completes racing, a release run by the consumer and the command at once, a refund racing
the release, disputes before and after it, Connect events twice and out of order; the provider
down then slow at the release; the consumer SIGKILLed after Stripe made the transfer and before
the ledger's write (reconcile records it), and a retry more than a day later (the clock moved)."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from typing import Any

from django.utils import timezone
from fault_rig import call
from fault_shop import (
    becomes,
    book,
    customer,
    invariants_hold,
    paid_at_provider,
    storm,
    variant,
    vendor_token,
)
from live_site import wait_for

from marketlink.outbox.models import OutboxEntry
from marketlink.payouts.models import ConnectedAccount, Payout


def ready_vendor(rig: Any) -> tuple[Any, str]:
    """A vendor who onboarded at the stand-in; its Connect events reach the site twice and in
    the wrong order. Returns (a variant of theirs, their token)."""
    target = variant(20, service__vendor__payouts_ready=False)
    token = vendor_token(target)
    status, body = call("POST", f"{rig.site}/api/vendors/payouts/onboarding/", token=token)
    assert status == 200, body
    account = ConnectedAccount.objects.get(vendor=target.service.vendor).account_id
    rig.standin.finish_onboarding(account)
    events = [event for event in rig.standin.events if event.get("account") == account]
    for event in [*reversed(events), *events]:
        assert rig.deliver(event) == 200
    target.service.vendor.refresh_from_db()
    assert target.service.vendor.payouts_ready
    return target, token


def processing(rig: Any, target: Any) -> str:
    token = customer()
    status, body = book(rig.site, token, target.id)
    assert status == 201, body
    order_id = body["data"]["id"]
    for event in paid_at_provider(rig, token, order_id):
        assert rig.deliver(event) == 200
    wait_for(lambda: Payout.objects.filter(order_id=order_id).exists(), 30, "the payout")
    becomes(order_id, "processing")  # its invoice sent: the vendor may complete it
    return str(order_id)


def complete(rig: Any, token: str, order_id: str) -> int:
    return call("POST", f"{rig.site}/api/orders/{order_id}/complete/", token=token)[0]


def payout_becomes(order_id: str, *statuses: str, timeout: float = 60) -> Payout:
    def found() -> Payout | None:
        return Payout.objects.filter(order_id=order_id, status__in=statuses).first()

    return wait_for(found, timeout, f"the payout of {order_id} to become {statuses}")  # type: ignore[no-any-return]


def transfers_of(rig: Any, order_id: str) -> list[dict[str, Any]]:
    return [t for t in rig.standin.transfers.values() if t["metadata"]["order_id"] == order_id]


def deliver_new(rig: Any, *types: str) -> None:
    for event in rig.standin.events:
        if event["type"] in types and event["id"] not in rig.extra.setdefault("sent", set()):
            rig.extra["sent"].add(event["id"])
            assert rig.deliver(event) == 200


def test_one_transfer_per_order_whatever_races(rig):
    target, token = ready_vendor(rig)
    raced, twice, refunded, held, late = (processing(rig, target) for _ in range(5))

    statuses = storm(6, lambda n: complete(rig, token, raced), lambda: None)
    assert sorted(statuses) == [200] + [409] * 5
    payout_becomes(raced, "released")

    # The consumer and the command run the same release row at once.
    assert complete(rig, token, twice) == 200
    done = rig.cli("payouts", "release", "--due", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    payout_becomes(twice, "released")

    # A refund racing the release: the release is cancelled, or made and reversed.
    refund = f"{rig.site}/api/orders/{refunded}/refund/"
    threading.Thread(target=complete, args=(rig, token, refunded)).start()
    assert call("POST", refund, token=token)[0] == 200
    payout_becomes(refunded, "cancelled", "reversed")

    # A dispute opened before the release holds it; lost, it cancels it.
    intent = Payout.objects.get(order_id=held).order.payment_intent_id
    dispute = rig.standin.dispute(intent)
    deliver_new(rig, "charge.dispute.created")
    assert complete(rig, token, held) == 200
    rig.standin.close_dispute(dispute["id"], won=False)
    deliver_new(rig, "charge.dispute.closed")
    payout_becomes(held, "cancelled")
    # Opened after the release, and lost: the transfer is reversed.
    assert complete(rig, token, late) == 200
    payout_becomes(late, "released")
    intent = Payout.objects.get(order_id=late).order.payment_intent_id
    rig.standin.close_dispute(rig.standin.dispute(intent)["id"], won=False)
    deliver_new(rig, "charge.dispute.created", "charge.dispute.closed", "transfer.created")
    payout_becomes(late, "reversed")

    for order_id in (raced, twice, late):
        assert len(transfers_of(rig, order_id)) == 1
    assert transfers_of(rig, held) == []
    assert len(transfers_of(rig, refunded)) <= 1
    invariants_hold(rig)


def test_provider_down_slow_and_a_consumer_killed_after_the_transfer(rig):
    target, token = ready_vendor(rig)
    down, reconciled, day_later = (processing(rig, target) for _ in range(3))

    # Down at the release (no answer: the same key again), then slow: the command makes it.
    with rig.proxy.faulty("down"):
        assert complete(rig, token, down) == 200
        wait_for(lambda: "no answer" in _row(down).last_error, 30, "the release to fail")
    with rig.proxy.faulty("slow"):
        done = rig.cli("payouts", "release", "--due", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        payout_becomes(down, "released")  # by the command, or the consumer's own retry
    assert len(transfers_of(rig, down)) == 1
    prefix = f"marketlink-{_row(down).pk}-"
    keys = {r.idempotency_key for r in rig.standin.requests_log if r.path == "/v1/transfers"}
    assert {key for key in keys if key and key.startswith(prefix)} == {f"{prefix}1"}

    # Killed after Stripe made the transfer, before the ledger knew: reconcile records it.
    _killed_mid_transfer(rig, token, reconciled)
    done = rig.cli("reconcile", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Payout.objects.get(order_id=reconciled).status == "released"

    # The same, and the retry comes more than a day later: Stripe forgot the key, so the
    # release looks for the order's transfers first and records the one it finds.
    _killed_mid_transfer(rig, token, day_later)
    row = _row(day_later)
    stale = (timezone.now() - timedelta(hours=25)).isoformat()
    OutboxEntry.objects.filter(pk=row.pk).update(
        payload={**row.payload, "key_at": stale}, claimed_until=timezone.now()
    )
    rig.standin.clock_offset = 25 * 3600
    try:
        done = rig.cli("payouts", "release", "--due", "--json")
    finally:
        rig.standin.clock_offset = 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert Payout.objects.get(order_id=day_later).status == "released"

    for order_id in (down, reconciled, day_later):
        assert len(transfers_of(rig, order_id)) == 1
    invariants_hold(rig)


def _row(order_id: str) -> OutboxEntry:
    return OutboxEntry.objects.get(kind="payout_release", subject_id=order_id)


def _killed_mid_transfer(rig: Any, token: str, order_id: str) -> None:
    """Complete with Stripe's answers held back; SIGKILL the consumer once the transfer is
    made at Stripe (its answer still on the way), then start another consumer."""
    with rig.proxy.faulty("mute"):
        assert complete(rig, token, order_id) == 200
        wait_for(lambda: transfers_of(rig, order_id), 30, "the transfer at Stripe")
        os.kill(rig.huey.pid, signal.SIGKILL)
        rig.huey.wait(timeout=10)
    rig.start_huey()
    assert Payout.objects.get(order_id=order_id).status == "due"
