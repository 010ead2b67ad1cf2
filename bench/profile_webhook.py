#!/usr/bin/env python
"""Where a webhook delivery's time goes, in one process, on the bench stack (PostgreSQL + Redis).

    python bench/profile_webhook.py [--orders 1000] [--cprofile]

Resets the bench database (as ``run.py`` does), starts the Stripe stand-in in this process with
the site's Stripe gateway pointed at it, pays ``--orders`` orders there (``stack.paid_checkouts``)
and delivers their events through Django's test client, with no server and no concurrency. Both
kinds are profiled both ways: for half the orders ``checkout.session.completed`` comes first (it
marks the order paid) and ``payment_intent.succeeded`` finds the order paid; for the other half
the intent comes first. Then every event again (duplicates of processed events). It prints:

- the SQL statements of one delivery of each kind (``CaptureQueriesContext``) and the Redis
  commands;
- the CPU time of one delivery, split by phase by wrapping marketlink's functions
  (``bench/profiling.py``), next to the bare INSERT view;
- what the consumer's drainer then costs per paid order: the outbox's ``invoice`` entries
  drained in batches in this process (``drain``), emails to the locmem backend;
- the signature check alone: the stripe SDK's ``verify_header`` (what the Stripe gateway runs)
  against ``marketlink.payments.gateways.signatures.verify`` (the dummy gateway's);
- with ``--cprofile``, cProfile's cumulative listing of the first deliveries.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(BENCH.parent), str(BENCH.parent / "example_project")]

from bench import profiling, stack  # noqa: E402

PHASES = profiling.Phases()


def instrument() -> None:
    """Wrap the functions a delivery goes through (by name, as they are in marketlink today)."""
    import stripe
    from django.core.handlers.base import BaseHandler
    from django.db.backends.base.base import BaseDatabaseWrapper
    from ninja.operation import Operation

    from marketlink.orders import history, sql, transitions
    from marketlink.outbox import services as outbox
    from marketlink.outbox import tasks
    from marketlink.payments import handlers, paying, webhooks
    from marketlink.payments.gateways import stripe as stripe_gateway
    from marketlink.payments.models import PaymentEvent

    wrap = PHASES.wrap
    wrap(BaseHandler, "get_response", "Django request, in all")
    wrap(Operation, "run", "  ninja operation, in all")
    wrap(webhooks, "webhook_receive", "    webhook_receive, in all")
    wrap(stripe_gateway.StripeGateway, "verify_event", "      verify_event (signature + JSON)")
    wrap(stripe.WebhookSignature, "verify_header", "        stripe verify_header")
    wrap(webhooks, "pay_at_once", "      the fast path (pay_at_once), in all")
    wrap(paying, "_already_paid_by", "        the row says 'already paid' (_already_paid_by)")
    wrap(transitions, "order_pay_when_pending", "        order_pay_when_pending, in all")
    wrap(sql, "pay_when_pending", "          the order's conditional UPDATE")
    wrap(history, "changes_record", "          history + what it owes, in all")
    wrap(outbox, "outbox_write", "            outbox entry INSERT")
    wrap(tasks, "wake", "      the drainer's wake (on commit)")
    wrap(webhooks, "_event_record", "      event row (_event_record), general path")
    wrap(webhooks, "event_process", "      event_process, general path, in all")
    wrap(webhooks, "_dispatch", "        _dispatch (order + handler), in all")
    wrap(webhooks, "order_for_event", "          order SELECT (order_for_event)")
    wrap(handlers, "mark_paid", "          mark_paid, in all")
    wrap(transitions.logger, "info", "      order change logger.info")
    wrap(PaymentEvent, "save", "      PaymentEvent.save() (the INSERT or the UPDATE), in all")
    wrap(BaseDatabaseWrapper, "commit", "      COMMIT")
    wrap(Operation, "_result_to_response", "    response (envelope schema + JSON)")
    PHASES.count_redis()


def instrument_invoice() -> None:
    """Wrap what draining the owed invoices goes through."""
    from marketlink.outbox import drainer
    from marketlink.payments import invoices

    wrap = PHASES.wrap
    wrap(drainer, "claim", "  claim a batch (SKIP LOCKED)")
    wrap(invoices, "invoices_send", "  invoices_send (the batch handler), in all")
    wrap(invoices, "_open", "    to processing + the invoice rows (_open)")
    wrap(invoices, "_message", "    one message built (templates + MIME)")
    wrap(invoices, "_send_one", "    one message sent and marked, in all")
    wrap(drainer, "record", "  each outcome recorded")


def main() -> None:
    args = profiling.arguments(__doc__, "orders", 1000, 45)
    standin = stack.start_standin()
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    seed = profiling.setup(args)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from marketlink.payments.gateways import signatures

    client = Client()
    warm_orders = 50
    started = time.perf_counter()
    orders, events = stack.paid_checkouts(
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

    # Half the orders hear of their payment first from the session, the other half from the
    # intent: each kind is profiled as the delivery that marks the order paid and as the one
    # that finds it paid. One order of each half apart for the SQL listings.
    half = len(sessions) // 2
    session_first, intent_then = sessions[:half], intents[:half]
    intent_first, session_then = intents[half:], sessions[half:]
    listings = [
        ("checkout.session.completed, first delivery (marks the order paid)", session_first),
        ("payment_intent.succeeded, first delivery (the order is already paid)", intent_then),
        ("payment_intent.succeeded, first delivery (marks the order paid)", intent_first),
        ("checkout.session.completed, first delivery (the order is already paid)", session_then),
    ]
    for title, indexes in listings:
        index = indexes.pop()  # the last order of its half: the same order within a half
        with CaptureQueriesContext(connection) as queries:
            assert deliver(index) == 200
        print(f"\n== SQL of one delivery: {title}: {len(queries.captured_queries)} statements")
        for number, query in enumerate(queries.captured_queries, 1):
            print(f"{number:2}. {query['sql'][:150]}")
    with CaptureQueriesContext(connection) as queries:
        assert deliver(index) == 200
    print(
        f"\n== SQL of a duplicate of a processed event: {len(queries.captured_queries)} statements"
    )
    for number, query in enumerate(queries.captured_queries, 1):
        print(f"{number:2}. {query['sql'][:150]}")

    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    instrument()
    passes: list[tuple[str, Callable[[int], int], list[int]]] = [
        ("session.completed, first delivery, marks paid", deliver, session_first),
        ("intent.succeeded, first delivery, already paid", deliver, intent_then),
        ("intent.succeeded, first delivery, marks paid", deliver, intent_first),
        ("session.completed, first delivery, already paid", deliver, session_then),
        ("duplicate delivery", deliver, sessions + intents),
        ("bare insert", insert, list(range(args.orders))),
    ]
    for name, call, indexes in passes:
        PHASES.measure(name, call, indexes)

    # What the consumer's drainer then does for the paid orders, in this process: it shares the
    # server's cores, so its CPU slows the webhook load as much as the deliveries' own. Per
    # order: the whole drain divided by the orders it sent.
    from marketlink.outbox.drainer import drain
    from marketlink.outbox.models import OutboxEntry

    instrument_invoice()
    owed = OutboxEntry.objects.filter(kind="invoice", status="pending").count()

    def drained(n: int) -> int:
        sent = drain(kinds=["invoice"])["done"]
        assert sent == owed, f"{sent} invoices sent, {owed} owed"
        return 200

    PHASES.measure(f"the owed invoices drained ({owed} orders, all at once)", drained, range(1))
    PHASES.report_missing()
    print(f"\nwakes queued: {HUEY.pending_count()} for {len(sessions)} orders")
    HUEY.flush()

    import stripe

    payload = payloads[sessions[0]]
    header = standin.sign(payload)
    for name, check in (
        (
            "stripe.WebhookSignature.verify_header",
            lambda: stripe.WebhookSignature.verify_header(
                payload, header, stack.STANDIN_WEBHOOK_SECRET, tolerance=300
            ),
        ),
        (
            "marketlink signatures.verify",
            lambda: signatures.verify(payload, header, stack.STANDIN_WEBHOOK_SECRET, 300),
        ),
        ("json.loads of the payload", lambda: json.loads(payload)),
    ):
        count = 5000
        cpu = time.thread_time()
        for _ in range(count):
            check()
        print(f"{name}: {(time.thread_time() - cpu) * 1e6 / count:.1f} us CPU ({len(payload)} B)")

    if args.cprofile:
        more, _ = stack.paid_checkouts(
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
        profiling.cprofile(
            f"{len(fresh)} first deliveries",
            lambda: [
                client.post(
                    "/api/webhooks/payment/",
                    payload,
                    content_type="application/json",
                    headers={"Stripe-Signature": standin.sign(payload)},
                )
                for payload in fresh
            ],
            args.top,
        )
    standin.stop()


if __name__ == "__main__":
    main()
