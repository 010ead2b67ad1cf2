"""Two app hosts behind one load balancer, on one PostgreSQL (through PgBouncer) and one Redis
(Sentinel): what each host decides alone must still hold for both."""

from __future__ import annotations

from collections import Counter

from fault_shop import book, customer, storm

from marketlink.orders.models import RepairOrder
from marketlink.testing.factories import VariantFactory


def test_no_oversell_on_one_hot_variant_booked_through_both_hosts(rig):
    stock, buyers = 25, 80
    target = VariantFactory(stock=stock)
    tokens = [customer() for _ in range(buyers)]

    def each(number: int):
        return rig.balancer.request(lambda site: book(site, tokens[number], target.id))

    answers = storm(buyers, each, lambda: None)

    statuses = Counter(status for status, _, _ in answers)
    assert statuses == {201: stock, 409: buyers - stock}, statuses
    assert {host for _, _, host in answers} == {"app1", "app2"}
    assert RepairOrder.objects.filter(variant=target).count() == stock
    target.refresh_from_db()
    assert target.stock == 0
