#!/usr/bin/env python
"""Where a webhook delivery's time goes, in one process, on the bench stack (PostgreSQL + Redis).

    python bench/profile_webhook.py [--orders 1000] [--cprofile]

Resets the bench database (as ``run.py`` does), starts the Stripe stand-in in this process with
the site's Stripe gateway pointed at it, pays ``--orders`` orders there (``run.paid_checkouts``)
and delivers their events through Django's test client, with no server and no concurrency, in
three passes: every ``checkout.session.completed`` (the delivery that marks the order paid),
every ``payment_intent.succeeded`` (a first delivery for an order already paid), then each of
those events again (duplicates of processed events). It prints:

- the SQL statements of one delivery of each kind (``CaptureQueriesContext``) and the Redis
  commands;
- the CPU time of one delivery (``time.thread_time``), split by phase by wrapping marketlink's
  functions (a phase whose function is gone is skipped), next to the bare INSERT view;
- the signature check alone: the stripe SDK's ``verify_header`` (what the Stripe gateway runs)
  against ``marketlink.payments.gateways.signatures.verify`` (the dummy gateway's);
- with ``--cprofile``, cProfile's cumulative listing of the first deliveries.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench import run  # noqa: E402

PHASES: Counter[str] = Counter()
ORDER: list[str] = []
REDIS_COMMANDS: Counter[str] = Counter()


def _wrap(owner: Any, attribute: str, name: str) -> None:
    function = getattr(owner, attribute, None)
    if function is not None:
        setattr(owner, attribute, _timed_here(name, function))


def _timed_here(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    ORDER.append(name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[name] += time.thread_time() - started

    return wrapper


def instrument() -> None:
    """Wrap the functions a delivery goes through (by name, as they are in marketlink today)."""
    import stripe
    from django.core.handlers.base import BaseHandler
    from django.db.backends.base.base import BaseDatabaseWrapper
    from ninja.operation import Operation
    from redis.client import Redis

    from marketlink.orders import services as orders
    from marketlink.orders.models import OrderStatusChange
    from marketlink.payments import services, tasks
    from marketlink.payments.gateways import stripe as stripe_gateway
    from marketlink.payments.models import PaymentEvent

    _wrap(BaseHandler, "get_response", "Django request, in all")
    _wrap(Operation, "run", "  ninja operation, in all")
    _wrap(services, "webhook_receive", "    webhook_receive, in all")
    _wrap(stripe_gateway.StripeGateway, "verify_event", "      verify_event (signature + JSON)")
    _wrap(stripe.WebhookSignature, "verify_header", "        stripe verify_header")
    _wrap(services, "event_state", "      stored event lookup (event_state)")
    _wrap(services, "_event_record", "      event row (_event_record)")
    _wrap(services, "event_process", "      event_process, in all")
    _wrap(services, "_processed", "      processing transaction (_processed), in all")
    _wrap(services, "_dispatch", "        handler, in all")
    _wrap(services, "order_for_event", "          order SELECT (order_for_event)")
    _wrap(services, "_remember_ids", "          remember ids (UPDATE)")
    _wrap(services, "order_transition", "          order_transition, in all")
    OrderStatusChange.objects.create = _timed_here(  # type: ignore[method-assign]
        "            history INSERT", OrderStatusChange.objects.create
    )
    _wrap(orders.logger, "info", "            logger.info")
    _wrap(tasks, "send_invoice", "          invoice task enqueue (on commit)")
    _wrap(PaymentEvent, "save", "      PaymentEvent.save() (the INSERT or the UPDATE), in all")
    _wrap(BaseDatabaseWrapper, "commit", "      COMMIT")
    _wrap(Operation, "_result_to_response", "    response (schema + JSON)")

    original = Redis.execute_command

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        REDIS_COMMANDS[str(args[0]).upper()] += 1
        return original(self, *args, **options)

    Redis.execute_command = execute_command  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--database-url", default=run.DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=run.DEFAULT_REDIS_URL)
    args = parser.parse_args()

    import logging

    standin = run.start_standin()
    run.django_setup(args.database_url, args.redis_url)
    logging.getLogger("marketlink").handlers[:] = [logging.NullHandler()]
    logging.getLogger("marketlink").propagate = False
    run.reset_stores(args.database_url, args.redis_url)
    seed = run.migrate_and_seed()

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from marketlink.payments.gateways import signatures

    client = Client()
    warm_orders = 50
    started = time.perf_counter()
    orders, events = run.paid_checkouts(
        standin,
        seed["vendor"],
        seed["customers"],
        "profile",
        warm_orders + args.orders + 1,
        "http://testserver/",
    )
    print(f"{len(orders)} orders paid at the stand-in in {time.perf_counter() - started:.1f} s")
    payloads = [json.dumps(event, indent=2).encode() for event in events]
    kinds = [event["type"] for event in events]

    def deliver(index: int) -> int:
        payload = payloads[index]
        response = client.post(
            "/api/webhooks/payment/",
            payload,
            content_type="application/json; charset=utf-8",
            headers={"Stripe-Signature": standin.sign(payload)},
        )
        return response.status_code

    def insert(n: int) -> int:
        return client.post("/bench/insert/", b"{}", content_type="application/json").status_code

    sessions = [i for i, kind in enumerate(kinds) if kind == "checkout.session.completed"]
    intents = [i for i, kind in enumerate(kinds) if kind == "payment_intent.succeeded"]
    assert len(sessions) == len(intents) == len(orders), Counter(kinds)
    warm, sessions, intents = warm_orders, sessions[warm_orders:], intents[warm_orders:]
    for index in [*range(2 * warm), *range(2 * warm)]:  # caches, the connection, the SDK
        assert deliver(index) == 200
        assert insert(index) == 201

    # One order apart for the SQL listings.
    show_session, show_intent = sessions.pop(), intents.pop()
    for title, index in (
        ("checkout.session.completed, first delivery (marks the order paid)", show_session),
        ("payment_intent.succeeded, first delivery (the order is already paid)", show_intent),
        ("a duplicate of a processed event", show_session),
    ):
        with CaptureQueriesContext(connection) as queries:
            assert deliver(index) == 200
        print(f"\n== SQL of one delivery: {title}: {len(queries.captured_queries)} statements")
        for number, query in enumerate(queries.captured_queries, 1):
            print(f"{number:2}. {query['sql'][:150]}")

    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    instrument()
    passes: list[tuple[str, Callable[[int], int], list[int]]] = [
        ("session.completed, first delivery", deliver, sessions),
        ("intent.succeeded, first delivery", deliver, intents),
        ("duplicate delivery", deliver, sessions + intents),
        ("bare insert", insert, list(range(args.orders))),
    ]
    for name, call, indexes in passes:
        PHASES.clear()
        REDIS_COMMANDS.clear()
        cpu, wall = time.thread_time(), time.perf_counter()
        statuses = Counter(call(n) for n in indexes)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        per = 1000 / len(indexes)
        print(
            f"\n== {name}: {len(indexes)} requests {dict(statuses)}; per request: "
            f"{cpu * per:.3f} ms CPU of this process (test client included), "
            f"{wall * per:.3f} ms wall; Redis commands "
            f"{ {k: round(v / len(indexes), 2) for k, v in REDIS_COMMANDS.items()} }"
        )
        for phase in ORDER:
            if PHASES[phase]:
                print(f"  {PHASES[phase] * per:7.3f} ms  {phase}")
    print(f"\ninvoice tasks queued: {HUEY.pending_count()} for {len(sessions)} orders")
    HUEY.flush()

    import stripe

    payload = payloads[show_session]
    header = standin.sign(payload)
    for name, check in (
        (
            "stripe.WebhookSignature.verify_header",
            lambda: stripe.WebhookSignature.verify_header(
                payload, header, run.STANDIN_WEBHOOK_SECRET, tolerance=300
            ),
        ),
        (
            "marketlink signatures.verify",
            lambda: signatures.verify(payload, header, run.STANDIN_WEBHOOK_SECRET, 300),
        ),
        ("json.loads of the payload", lambda: json.loads(payload)),
    ):
        count = 5000
        cpu = time.thread_time()
        for _ in range(count):
            check()
        print(f"{name}: {(time.thread_time() - cpu) * 1e6 / count:.1f} us CPU ({len(payload)} B)")

    if args.cprofile:
        more, _ = run.paid_checkouts(
            standin,
            seed["vendor"],
            seed["customers"],
            "profile-c",
            200,
            "http://testserver/",
        )
        mine = {str(order.id) for order in more}
        fresh = [
            json.dumps(e, indent=2).encode()
            for e in standin.events
            if e["data"]["object"]["metadata"].get("order_id") in mine
        ]
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        for payload in fresh:
            client.post(
                "/api/webhooks/payment/",
                payload,
                content_type="application/json",
                headers={"Stripe-Signature": standin.sign(payload)},
            )
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(f"\n== cProfile (CPU time) of {len(fresh)} first deliveries")
        print(out.getvalue())
    standin.stop()


if __name__ == "__main__":
    main()
