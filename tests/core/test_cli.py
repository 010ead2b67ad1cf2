from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from order_helpers import new_order
from typer.testing import CliRunner

from marketlink import __version__
from marketlink.cli import app
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.dummy import session_event
from marketlink.payments.models import DummyCheckoutSession, EventStatus, PaymentEvent
from marketlink.payments.webhooks import webhook_receive

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def invoke_json(*args: str) -> tuple[int, dict]:
    """Run a command with --json: its exit code and the one JSON document on stdout."""
    result = invoke(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_version():
    result = invoke("version")
    assert result.exit_code == 0
    assert result.stdout.strip() == __version__


def test_commands_needing_django_explain_missing_settings(monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE")
    result = invoke("seed")
    assert result.exit_code == 2
    assert "DJANGO_SETTINGS_MODULE" in result.stderr


@pytest.mark.django_db
def test_check_fails_on_a_bad_setting(settings):
    settings.MARKETLINK = {"PAGE_SIZE": "many"}
    result = invoke("check")
    assert result.exit_code == 2
    assert "marketlink.E001" in result.stderr


@pytest.mark.django_db
def test_orders_expire_dry_run_changes_nothing():
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    dry = invoke("orders", "expire", "--dry-run")
    assert dry.exit_code == 0
    assert "Dry run" in dry.stdout
    assert "expired" in dry.stdout
    assert "nothing changed" in dry.stdout
    assert RepairOrder.objects.get(pk=order.pk).status == OrderStatus.PENDING
    code, document = invoke_json("orders", "expire")
    assert (code, document["summary"]["expired"]) == (0, 1)
    assert RepairOrder.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    assert invoke_json("orders", "expire")[1]["summary"]["expired"] == 0


@pytest.fixture
def failed_event(db) -> PaymentEvent:
    """A paid event for an order whose price no longer matches: stored as failed."""
    order = new_order()
    checkout_open(order=order, base_url="http://testserver/")
    session = DummyCheckoutSession.objects.get(order=order)
    session.amount_minor += 1
    session.status, session.payment_status = "complete", "paid"
    session.save()
    payload, signature = session_event(session, "checkout.session.completed")
    record = webhook_receive(payload=payload, signature=signature)
    assert record.status == EventStatus.FAILED
    return record


@pytest.mark.django_db
def test_events_list_and_replay(failed_event):
    listed = invoke("events", "list", "--attention")
    assert listed.exit_code == 1  # an event needs a person
    assert failed_event.event_id in listed.stdout
    assert "amount mismatch" in listed.stdout
    code, document = invoke_json("webhooks", "list", "--attention")
    [item] = document["items"]
    assert (item["event_id"], item["status"], item["attention"]) == (
        failed_event.event_id,
        "failed",
        True,
    )

    # The operator fixes the cause (here: the event's amount was right, the order was repriced).
    event_amount = failed_event.payload["data"]["object"]["amount_total"]
    RepairOrder.objects.filter(pk=failed_event.order_id).update(
        total_amount=event_amount / 100, unit_price=event_amount / 100
    )
    code, dry = invoke_json("events", "replay", failed_event.event_id, "--dry-run")
    assert code == 0
    assert dry["summary"]["dry_run"] is True
    assert [(i["event_id"], i["before"], i["after"]) for i in dry["items"]] == [
        (failed_event.event_id, "failed", "processed")
    ]
    assert PaymentEvent.objects.get(pk=failed_event.pk).status == EventStatus.FAILED
    assert RepairOrder.objects.get(pk=failed_event.order_id).status == OrderStatus.PENDING

    real = invoke("webhooks", "replay", "--failed")
    assert real.exit_code == 0
    assert failed_event.event_id in real.stdout
    assert "replayed" in real.stdout
    assert RepairOrder.objects.get(pk=failed_event.order_id).status in {"paid", "processing"}
    history = RepairOrder.objects.get(pk=failed_event.order_id).history.first()
    assert history.source == "cli"


@pytest.mark.django_db
def test_replay_of_unknown_event_fails():
    result = invoke("events", "replay", "evt_nope")
    assert result.exit_code == 1


@pytest.mark.django_db
def test_reconcile_applies_a_lost_webhook():
    order = new_order()
    checkout_open(order=order, base_url="http://testserver/")
    # The customer paid, but the provider's webhook never reached us.
    DummyCheckoutSession.objects.filter(order=order).update(
        status="complete", payment_status="paid", payment_intent_id="pi_dummy_lost"
    )
    code, dry = invoke_json("reconcile", "--dry-run")
    assert code == 0
    assert [(i["order"], i["outcome"]) for i in dry["items"]] == [
        (str(order.id), "payment confirmed")
    ]
    assert RepairOrder.objects.get(pk=order.pk).status == OrderStatus.PENDING
    invoke("reconcile")
    reconciled = RepairOrder.objects.get(pk=order.pk)
    assert reconciled.status in {"paid", "processing"}
    assert reconciled.payment_intent_id == "pi_dummy_lost"
    assert invoke("reconcile").stdout.count(str(order.id)) == 0


@pytest.mark.django_db
def test_reconcile_finds_a_lost_payment_of_an_order_that_expired_meanwhile():
    order = new_order(stock=1)
    checkout_open(order=order, base_url="http://testserver/")
    DummyCheckoutSession.objects.filter(order=order).update(
        status="complete", payment_status="paid", payment_intent_id="pi_dummy_late"
    )
    RepairOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    invoke("orders", "expire")
    assert RepairOrder.objects.get(pk=order.pk).status == OrderStatus.CANCELLED
    result = invoke("reconcile")
    assert "unit taken again" in result.stdout
    assert RepairOrder.objects.get(pk=order.pk).status in {"paid", "processing"}
