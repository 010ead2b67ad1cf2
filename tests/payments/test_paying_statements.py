"""What a paying webhook delivery costs the database, counted statement by statement (it is
benchmarked): the first news that a pending order was paid sends at most four statements besides
``BEGIN`` and ``COMMIT`` on PostgreSQL, savepoints and the order lookup included (the read of
the event's id; the event's row and, in the same statement, the order's conditional ``UPDATE``,
which finds it and checks the money; its history row; the outbox entry owing its invoice).
SQLite, which cannot write two tables in one statement, sends the event's row apart: five. A
redelivery is answered after one indexed read; the other news of the same payment after
three.

Counted at the top level, as a site runs them (transactional tests: no test savepoints),
through the webhook endpoint on the dummy gateway (its signature check touches no database).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from order_helpers import history, new_order
from payment_events import checkout_session, deliver, event, payment_intent

from marketlink.outbox.models import OutboxEntry
from marketlink.payments.gateways import dummy
from marketlink.payments.models import PaymentEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("tasks_queued")]

CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _delivered(body: dict) -> tuple[int, list[str]]:
    """The webhook's answer and the statements it sent, transaction control aside (SQLite's
    is logged, PostgreSQL's is not)."""
    with CaptureQueriesContext(connection) as queries:
        status = deliver(Client(), body, dummy.webhook_secret()).status_code
    sent = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(CONTROL)]
    return status, sent


def test_a_first_paying_delivery_is_four_statements(settings):
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    order = new_order()
    body = event("checkout.session.completed", checkout_session(order))

    status, statements = _delivered(body)

    assert status == 200
    if connection.vendor == "postgresql":
        assert [s.split()[0] for s in statements] == ["SELECT", "WITH", "INSERT", "INSERT"]
    else:
        assert [s.split()[0] for s in statements] == [
            "SELECT",
            "INSERT",
            "UPDATE",
            "INSERT",
            "INSERT",
        ]
    order.refresh_from_db()
    assert (order.status, order.payment_intent_id) == ("paid", f"pi_test_{order.id.hex[:16]}")
    assert order.checkout_session_id == checkout_session(order)["id"]
    assert history(order)[-1] == ("pending", "paid", "webhook")
    kept = PaymentEvent.objects.get(event_id=body["id"])
    assert (kept.status, kept.order_id, kept.attempts) == ("processed", order.pk, 1)
    assert OutboxEntry.objects.filter(dedupe_key=f"invoice:{order.pk}").exists()

    status, again = _delivered(body)  # Stripe's redelivery of the same event
    assert status == 200
    assert [s.split()[0] for s in again] == ["SELECT"]
    assert history(order)[-1] == ("pending", "paid", "webhook")

    # The other news of the same payment: the order is found paid by it, its result says so.
    intent = event("payment_intent.succeeded", payment_intent(order))
    status, other = _delivered(intent)
    assert status == 200
    first = ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "UPDATE"]
    assert [s.split()[0] for s in other] == ["SELECT", *first, "UPDATE"]
    kept = PaymentEvent.objects.get(event_id=intent["id"])
    assert (kept.status, kept.result, kept.order_id) == ("processed", "already paid", order.pk)
    assert [to for _, to, _ in history(order)] == ["paid"]


def test_a_paying_delivery_that_does_not_match_takes_the_general_path(settings):
    """Money that does not match writes nothing on the fast path; the general path flags it."""
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    order = new_order()
    short = checkout_session(order, amount_total=100)
    status, _ = _delivered(event("checkout.session.completed", short))

    assert status == 200
    order.refresh_from_db()
    assert order.status == "pending"
    kept = PaymentEvent.objects.get()
    assert (kept.status, kept.needs_attention) == ("failed", True)
    assert "amount mismatch" in kept.last_error
    assert order.total_amount == Decimal("29.99")
