"""The Stripe stand-in slow (5 s) and down while a payment link opens, a refund is asked for and
``marketlink reconcile`` runs; webhooks dropped, duplicated, reordered and delayed past the
reservation's end; the clock moved past expiry while a payment is in flight."""

from __future__ import annotations

import time
from datetime import timedelta

from django.utils import timezone
from fault_rig import call
from fault_shop import (
    becomes,
    book,
    customer,
    events_of,
    invariants_hold,
    open_link,
    paid_at_provider,
    status_of,
    storm,
    variant,
    vendor_token,
)
from live_site import wait_for

from marketlink.orders.models import RepairOrder
from marketlink.payments.models import Refund


def placed(rig, stock: int = 3):
    token = customer()
    target = variant(stock)
    status, body = book(rig.site, token, target.id)
    assert status == 201, body
    return token, target, body["data"]["id"]


def pay_and_deliver(rig, token: str, order_id: str) -> None:
    for event in paid_at_provider(rig, token, order_id):
        assert rig.deliver(event) == 200


def test_stripe_slow_and_down_for_link_refund_and_reconcile(rig):
    token, target, order_id = placed(rig)
    with rig.proxy.faulty("down"):
        status, body = open_link(rig, token, order_id)
        assert status in {502, 503}, body
        assert body["success"] is False
        assert body["message"]
    assert status_of(order_id) == "pending"  # the reservation stands; the link works later
    with rig.proxy.faulty("slow"):
        started = time.monotonic()
        status, _ = open_link(rig, token, order_id)
        assert status == 303
        assert time.monotonic() - started >= 5

    pay_and_deliver(rig, token, order_id)
    becomes(order_id, "processing")
    refund = f"{rig.site}/api/orders/{order_id}/refund/"
    with rig.proxy.faulty("down"):
        status, body = call("POST", refund, token=vendor_token(target))
        assert status in {502, 503}, body
    assert status_of(order_id) == "processing"
    intent = RepairOrder.objects.get(pk=order_id).payment_intent_id
    # Nothing given back of this order's payment (other cases of the session refund theirs).
    assert not [r for r in rig.standin.refunds.values() if r["payment_intent"] == intent]
    with rig.proxy.faulty("slow"):
        status, body = call("POST", refund, token=vendor_token(target))
        assert status == 200, body
    status, body = call("POST", refund, token=vendor_token(target))  # asked again: one refund
    assert status in {200, 409}, body
    assert len([r for r in rig.standin.refunds.values() if r["payment_intent"] == intent]) == 1

    # A webhook dropped for good: reconcile finds the payment, once the provider answers.
    token, _, lost = placed(rig)
    paid_at_provider(rig, token, lost)
    with rig.proxy.faulty("down"):
        done = rig.cli("reconcile", "--json")
        assert done.returncode == 3, done.stdout + done.stderr  # a dependency unreachable
        assert "could not ask the provider" in done.stdout
    assert status_of(lost) == "pending"
    with rig.proxy.faulty("slow"):
        done = rig.cli("reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    becomes(lost, "processing")
    invariants_hold(rig)


def test_webhooks_duplicated_and_reordered(rig):
    token, _, order_id = placed(rig)
    events = paid_at_provider(rig, token, order_id)
    twice_reversed = [*reversed(events), *reversed(events)]  # payment_intent.succeeded first
    statuses = storm(len(twice_reversed), lambda n: rig.deliver(twice_reversed[n]), lambda: None)
    assert set(statuses) == {200}
    becomes(order_id, "processing")
    assert RepairOrder.objects.get(pk=order_id).history.filter(to_status="paid").count() == 1

    invariants_hold(rig)


def test_payment_delayed_past_the_reservation_takes_a_unit_again_or_is_refunded(rig):
    """The clock moves past the reservation's end while the payment is in flight (its
    ``expires_at`` moved back, the expiry job run): the late payment takes a unit again if
    there is one, and is refunded if another customer took the last one meanwhile."""
    token, _, again = placed(rig, stock=2)
    token_last, last_variant, refunded = placed(rig, stock=1)
    in_flight = {order: paid_at_provider(rig, who, order)
                 for who, order in ((token, again), (token_last, refunded))}  # fmt: skip
    RepairOrder.objects.filter(pk__in=[again, refunded]).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert rig.cli("orders", "expire").returncode == 0
    assert status_of(again) == status_of(refunded) == "cancelled"
    assert book(rig.site, customer(), last_variant.id)[0] == 201  # the freed last unit

    for events in in_flight.values():
        for event in events:
            assert rig.deliver(event) == 200

    becomes(again, "processing")
    assert status_of(refunded) == "cancelled"
    wait_for(lambda: Refund.objects.filter(order_id=refunded, status="succeeded").exists(), 60,
             "the late payment's refund")  # fmt: skip
    invariants_hold(rig)


def test_refund_events_before_payment_events(rig):
    token, _, refunded = placed(rig)
    payment = paid_at_provider(rig, token, refunded)
    intent = rig.standin.sessions[RepairOrder.objects.get(pk=refunded).checkout_session_id]
    rig.standin.refund(intent["payment_intent"])  # refunded from the provider's dashboard
    refund_events = [e for e in events_of(rig, refunded) if e not in payment]
    for event in [*refund_events, *payment, *refund_events]:  # Stripe retries in any order
        assert rig.deliver(event) == 200
    becomes(refunded, "refunded")
    invariants_hold(rig)
