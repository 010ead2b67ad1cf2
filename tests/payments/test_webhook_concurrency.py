"""Concurrent duplicate deliveries against a live site (gunicorn, 2 processes, PostgreSQL): an
event is processed once however many copies arrive at the same instant, and two different
events about one payment mark the order paid once; in-process threads, many rounds: no such
rush deadlocks."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test import Client
from live_site import site_env, start_gunicorn, stop
from mail_outbox import sent_emails
from order_helpers import new_order
from payment_events import checkout_session, deliver, event, payment_intent, signed

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.payments.gateways import dummy
from marketlink.payments.models import Invoice, PaymentEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

WEBHOOK_SECRET = "whsec_concurrency_test"
COPIES = 10


@pytest.fixture
def site(outbox: Path) -> Iterator[str]:
    """The example site with the Stripe gateway (webhooks need no call to Stripe), tasks run
    in-process (no REDIS_URL: immediate Huey) and emails written to ``outbox``."""
    env = site_env(
        REDIS_URL=None,
        STRIPE_SECRET_KEY="sk_test_concurrency",
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE="http://127.0.0.1:9",  # nothing listens: no test may need Stripe
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
    )
    proc, url = start_gunicorn(env)
    yield url
    stop(proc)


def post_all(base_url: str, bodies: list[bytes]) -> list[int]:
    """POST each body to the webhook, all released at the same instant; the statuses."""
    url = urlsplit(base_url)
    start = threading.Barrier(len(bodies))

    def one(payload: bytes) -> int:
        _, signature = signed(payload, WEBHOOK_SECRET)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        try:
            start.wait()
            conn.request(
                "POST",
                "/api/webhooks/payment/",
                payload,
                {"Content-Type": "application/json", "Stripe-Signature": signature},
            )
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


def assert_paid_once(order: RepairOrder, outbox: Path, emails_before: int) -> None:
    order.refresh_from_db()
    assert order.status == "processing"
    changes = list(
        OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status")
    )
    assert changes == [("pending", "paid"), ("paid", "processing")]
    assert Invoice.objects.filter(order=order, sent_at__isnull=False).count() == 1
    assert len(sent_emails(outbox)) == emails_before + 1
    assert ServiceVariant.objects.get(pk=order.variant_id).stock == 4


def test_one_event_delivered_ten_times_at_once_is_processed_once(site, outbox):
    for round_ in range(3):
        order = new_order()
        body = json.dumps(event("checkout.session.completed", checkout_session(order))).encode()

        statuses = post_all(site, [body] * COPIES)

        assert statuses == [200] * COPIES, statuses
        stored = PaymentEvent.objects.get(order=order)
        # One processing: a second one would have found the order paid and said so.
        assert (stored.status, stored.attempts, stored.result) == (
            "processed",
            1,
            "payment confirmed",
        )
        assert_paid_once(order, outbox, emails_before=round_)


def test_two_events_about_one_payment_at_once_pay_once(site, outbox):
    order = new_order()
    completed = json.dumps(event("checkout.session.completed", checkout_session(order))).encode()
    succeeded = json.dumps(event("payment_intent.succeeded", payment_intent(order))).encode()

    statuses = post_all(site, [completed, succeeded] * (COPIES // 2))

    assert statuses == [200] * COPIES, statuses
    events = PaymentEvent.objects.filter(order=order)
    assert sorted(events.values_list("event_type", "status", "attempts")) == [
        ("checkout.session.completed", "processed", 1),
        ("payment_intent.succeeded", "processed", 1),
    ]
    assert_paid_once(order, outbox, emails_before=0)
    results: Any = sorted(events.values_list("result", flat=True))
    assert results == ["already paid", "payment confirmed"]


def deliver_in_process(bodies: list[dict[str, Any]]) -> list[int]:
    """Each body delivered to the webhook by a thread of this process (its own connection), all
    released at the same instant; the statuses."""
    start = threading.Barrier(len(bodies))

    def one(body: dict[str, Any]) -> int:
        try:
            start.wait()
            return deliver(Client(), body, dummy.webhook_secret()).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(one, bodies))


@pytest.mark.usefixtures("tasks_queued")
def test_both_events_of_many_payments_delivered_at_once_never_deadlock(settings):
    """Stripe's two events of one payment, five copies each, all at once, for 20 orders in a row
    (in-process threads, one connection each). Every delivery is answered 200: none is made to
    wait for another's event row while it holds the order (which deadlocked, and was answered
    503, when the order was paid before the event's row was written)."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    refused: list[list[int]] = []
    for _ in range(20):
        order = new_order()
        completed = event("checkout.session.completed", checkout_session(order))
        succeeded = event("payment_intent.succeeded", payment_intent(order))
        statuses = deliver_in_process([completed, succeeded] * (COPIES // 2))
        refused += [statuses] if statuses != [200] * COPIES else []
        order.refresh_from_db()
        assert order.status == "paid"
        assert sorted(
            PaymentEvent.objects.filter(order=order).values_list("result", flat=True)
        ) == [
            "already paid",
            "payment confirmed",
        ]
    assert refused == []
