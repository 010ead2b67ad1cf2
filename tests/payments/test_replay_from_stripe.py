"""``marketlink webhooks replay --from-stripe``: deliveries that never reached us are fetched back
over the Stripe stand-in's events API and go through the webhook pipeline once; a dry run
reports that and changes nothing; a second run finds nothing to do."""

from __future__ import annotations

import json
from typing import Any

import pytest
from stripe_shop import status_of
from typer.testing import CliRunner

from marketlink.cli import app
from marketlink.payments.models import EventStatus, Invoice, PaymentEvent
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


def replay(*args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        app, ["webhooks", "replay", "--from-stripe", *args, "--json"], catch_exceptions=False
    )
    return result.exit_code, json.loads(result.stdout) if result.stdout else {}


@pytest.fixture
def paid_unheard(shop):
    """Two orders paid at Stripe whose events (four) never reached the webhook."""
    variant = VariantFactory(stock=5)
    orders = []
    for _ in range(2):
        order, session_id = shop.opened(AccountFactory().user, variant)
        shop.standin.pay(session_id)
        orders.append(order)
    assert len(shop.undelivered()) == 4
    assert [status_of(order) for order in orders] == ["pending", "pending"]
    return orders


def test_a_dry_run_reports_what_the_replay_then_does_and_changes_nothing(paid_unheard):
    code, dry = replay("--since", "1h", "--dry-run")

    assert code == 0
    assert dry["summary"]["dry_run"] is True
    assert (dry["summary"]["fetched"], dry["summary"]["stored_now"]) == (4, 4)
    assert {item["after"] for item in dry["items"]} == {EventStatus.PROCESSED}
    assert PaymentEvent.objects.count() == 0
    assert [status_of(order) for order in paid_unheard] == ["pending", "pending"]

    code, real = replay("--since", "1h")

    assert code == 0
    assert [(i["event_id"], i["after"]) for i in real["items"]] == [
        (i["event_id"], i["after"]) for i in dry["items"]
    ]


def test_lost_deliveries_are_stored_and_processed_once_and_a_second_run_changes_nothing(
    paid_unheard, shop
):
    with shop.on_commit(execute=True):  # the invoice tasks enqueued on commit
        code, first = replay("--since", "1h")

    assert code == 0
    assert first["summary"]["stored_now"] == 4
    assert {status_of(order) for order in paid_unheard} <= {"paid", "processing"}
    assert Invoice.objects.filter(order_id__in=[o["id"] for o in paid_unheard]).count() == 2
    assert set(PaymentEvent.objects.values_list("event_id", flat=True)) == {
        e["id"] for e in shop.standin.events
    }

    with shop.on_commit(execute=True):
        code, second = replay("--since", "1h")

    assert code == 0
    assert (second["summary"]["stored_now"], second["summary"]["already_stored"]) == (0, 4)
    assert Invoice.objects.count() == 2


def test_only_the_types_asked_for_are_replayed(paid_unheard):
    code, document = replay("--since", "1h", "--type", "payment_intent.succeeded")

    assert code == 0
    assert {item["type"] for item in document["items"]} == {"payment_intent.succeeded"}
    assert document["summary"]["stored_now"] == 2


def test_further_back_than_stripe_keeps_events_is_refused(standin):
    result = CliRunner().invoke(app, ["webhooks", "replay", "--from-stripe", "--since", "31d"])

    assert result.exit_code == 2
    assert "30 days" in result.stderr


def test_an_unknown_event_type_is_a_usage_error(standin):
    result = CliRunner().invoke(
        app, ["webhooks", "replay", "--from-stripe", "--type", "customer.created"]
    )

    assert result.exit_code == 2
    assert "customer.created" in result.stderr


def test_stripe_down_exits_3_and_stores_nothing(paid_unheard, shop):
    shop.standin.down = True

    code, document = replay("--since", "1h")

    assert code == 3
    assert "payment provider unreachable" in document["summary"]["notes"][0]
    assert PaymentEvent.objects.count() == 0
