"""Redis and PostgreSQL stopped under a storm of bookings, and back: what clients see, and that
the same workers serve again afterwards."""

from __future__ import annotations

import time
from collections import Counter

from fault_rig import call, children
from fault_shop import book, booking_loop, storm, tokens, variant
from invariants import assert_invariants
from live_site import wait_for

from marketlink.orders.models import RepairOrder

STOCK = 5
CLIENTS = 6


def _storm_with(rig, fault) -> tuple[Counter[int], object]:
    tokens(CLIENTS)
    target = variant(STOCK)
    results = storm(CLIENTS, booking_loop(rig.site, target.id, seconds=6), fault)
    return Counter(status for statuses in results for status in statuses), target


def test_redis_stopped_and_restarted_mid_storm(rig):
    workers = children(rig.gunicorn.pid)

    def fault() -> None:
        time.sleep(1)
        rig.redis.stop()
        time.sleep(2.5)
        rig.redis.start()

    seen, target = _storm_with(rig, fault)

    # Without Redis, bookings go on under the database lock alone (DESIGN 5): sold out is 409.
    assert set(seen) <= {201, 409, 503}, seen
    assert seen[201] == STOCK == RepairOrder.objects.filter(variant=target).count()
    wait_for(lambda: call("GET", f"{rig.site}/api/health/")[0] == 200, 30, "health again")
    assert book(rig.site, tokens(1)[0], variant(1).id)[0] == 201
    assert children(rig.gunicorn.pid) == workers  # recovered, not restarted
    assert_invariants(standin=rig.standin)


def test_postgres_restarted_mid_storm(rig):
    workers = children(rig.gunicorn.pid)

    def fault() -> None:
        time.sleep(1)
        rig.restart_postgres(down_for=2)

    seen, target = _storm_with(rig, fault)

    assert set(seen) <= {201, 409, 503}, seen
    assert seen[503] > 0, "the outage was not seen"
    # Each 201 is one whole order; nothing half-written from the requests the outage cut.
    assert seen[201] == RepairOrder.objects.filter(variant=target).count() <= STOCK
    assert book(rig.site, tokens(1)[0], variant(1).id)[0] == 201
    assert children(rig.gunicorn.pid) == workers
    assert_invariants(standin=rig.standin)
