"""Two app hosts behind one load balancer, on one PostgreSQL (through PgBouncer) and one Redis
(Sentinel): what each host decides alone must still hold for both."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

from fault_shop import becomes, book, customer, paid_at_provider, storm
from live_site import wait_for

from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.payments.models import Invoice, PaymentEvent
from marketlink.testing.factories import VariantFactory


def test_no_oversell_on_one_hot_variant_booked_through_both_hosts(rig):
    stock, buyers = 25, 80
    target = VariantFactory(stock=stock)
    tokens = [customer() for _ in range(buyers)]

    answers = storm(buyers, lambda n: rig.book(tokens[n], target.id), lambda: None)

    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {201: stock, 409: buyers - stock}, statuses
    assert {host for _, _, host in answers} == {"app1", "app2"}
    assert RepairOrder.objects.filter(variant=target).count() == stock
    target.refresh_from_db()
    assert target.stock == 0


def test_one_event_delivered_to_both_hosts_at_once_is_processed_once(rig):
    orders = []
    for _ in range(6):
        token = customer()
        status, body = book(rig.site, token, VariantFactory(stock=5).id)
        assert status == 201, body
        orders.append((token, body["data"]["id"]))
    events = [
        event for token, order_id in orders for event in paid_at_provider(rig, token, order_id)
    ]
    both = [f"{app.site}/api/webhooks/payment/" for app in rig.apps]

    def to_both_at_once(event: dict) -> list[int]:
        together = threading.Barrier(2)

        def send(number: int) -> int:
            together.wait(timeout=5)
            return rig.standin.deliver(event, both[number])

        return storm(2, send, lambda: None)

    statuses = [status for event in events for status in to_both_at_once(event)]

    assert set(statuses) == {200}, statuses
    ids = [order_id for _, order_id in orders]
    rows = PaymentEvent.objects.filter(event_id__in=[e["id"] for e in events])
    assert sorted(rows.values_list("event_id", flat=True)) == sorted(e["id"] for e in events)
    assert {(r.status, r.attempts, r.needs_attention) for r in rows} == {("processed", 1, False)}
    for order_id in ids:
        becomes(order_id, "processing")
    paid = OrderStatusChange.objects.filter(order_id__in=ids, to_status="paid")
    assert Counter(paid.values_list("order_id", flat=True)) == {uuid.UUID(i): 1 for i in ids}
    wait_for(lambda: Invoice.objects.filter(order_id__in=ids, status="sent").count() == len(ids),
             60, "the invoices")  # fmt: skip


def test_per_customer_limits_and_throttles_count_across_hosts(rig):
    """One customer spreading a burst over both hosts meets the same limit as on one: the
    limit of live orders per variant (3, the account row lock in PostgreSQL) and the booking
    throttle (8/min here, counted in Redis's primary)."""
    variant, token = VariantFactory(stock=20), customer()
    answers = storm(8, lambda n: rig.book(token, variant.id), lambda: None)
    assert {host for _, _, host in answers} == {"app1", "app2"}
    assert Counter(status for status, _, _ in answers) == {201: 3, 409: 5}
    refused = {body["code"] for status, body, _ in answers if status == 409}
    assert refused == {"pending_order_limit_per_variant"}

    variants, token = [VariantFactory(stock=5) for _ in range(12)], customer()
    answers = storm(12, lambda n: rig.book(token, variants[n].id), lambda: None)
    assert {host for _, _, host in answers} == {"app1", "app2"}
    # Counted per host, 6 + 6 would pass the throttle and the limit of 10 live orders would
    # refuse 2 (409): shared, the 9th request on is refused with 429.
    assert Counter(status for status, _, _ in answers) == {201: 8, 429: 4}
