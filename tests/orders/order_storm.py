"""A rush of real HTTP bookings against a live server, and the invariants checked after it."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import RepairOrder
from marketlink.orders.transitions import HOLDS_STOCK


@dataclass(frozen=True)
class Answer:
    status: int
    finished_at: float  # wall clock, comparable with the orders' created_at
    body: dict


def book_concurrently(
    base_url: str,
    variant_id: object,
    tokens: Sequence[str],
    *,
    requests: int,
    concurrency: int,
    on_answer: Callable[[int], None] | None = None,
) -> list[Answer]:
    """POST /api/orders/ ``requests`` times from ``concurrency`` threads, customers taking turns."""
    url = urlsplit(base_url)
    body = json.dumps({"variant_id": str(variant_id)})
    done = 0
    lock = threading.Lock()
    start = threading.Barrier(concurrency)

    def one(index: int) -> Answer:
        nonlocal done
        if index < concurrency:
            start.wait()  # the first wave leaves together: a real rush
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            conn.request(
                "POST",
                "/api/orders/",
                body,
                {
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {tokens[index % len(tokens)]}",
                },
            )
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        answer = Answer(response.status, time.time(), json.loads(payload or b"{}"))
        with lock:
            done += 1
            if on_answer:
                on_answer(done)
        return answer

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(requests)))


def units_held(variant_id: object) -> int:
    return RepairOrder.objects.filter(variant_id=variant_id, status__in=HOLDS_STOCK).count()


def assert_storm_outcome(answers: list[Answer], variant_id: object, stock: int) -> None:
    """Exactly min(stock, requests) orders, nothing oversold, no 5xx, no refusal while stock
    remained (a 409 that finished before the last unit was sold came too early)."""
    statuses = [a.status for a in answers]
    assert not [s for s in statuses if s >= 500], f"server errors: {statuses}"
    successes = [a for a in answers if a.status == 201]
    refusals = [a for a in answers if a.status == 409]
    assert len(successes) + len(refusals) == len(answers), sorted(set(statuses))
    expected = min(stock, len(answers))
    assert len(successes) == expected
    variant = ServiceVariant.objects.get(pk=variant_id)
    assert variant.stock == stock - expected
    assert units_held(variant_id) == expected
    assert len({a.body["data"]["id"] for a in successes}) == expected
    assert sorted(a.body["data"]["variant"]["stock"] for a in successes) == list(
        range(stock - expected, stock)
    )
    if refusals:
        sold_out_at = max(
            RepairOrder.objects.filter(variant_id=variant_id).values_list("created_at", flat=True)
        ).timestamp()
        early = [a for a in refusals if a.finished_at < sold_out_at]
        assert not early, f"{len(early)} requests refused while stock remained"
        assert all(a.body["message"] == "This variant is out of stock." for a in refusals)
