"""``marketlink invoices resend``: named orders or ``--stuck`` (the invoices reconcile finds), sent
now, in the command's own process (no consumer needed), never a second invoice for an order
whose invoice was sent unless ``--force``; and both ``reconcile`` and ``invoices resend`` as the
installed console script.

Transactional: the command sends each invoice once its decision commits, as in production."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from cli_runner import EXAMPLE_PROJECT, invoke, invoke_json, run_console_script
from django.utils import timezone
from order_helpers import new_order

from marketlink.orders.models import RepairOrder
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.services import outbox_write
from marketlink.payments.models import Invoice, InvoiceStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("dummy_gateway")]


def paid_order(entry: dict[str, object] | None = None, **invoice: object) -> RepairOrder:
    """An order paid an hour ago, its invoice owed since then (its outbox entry due then, or as
    ``entry`` says), with an invoice in the given state, or none."""
    order = new_order()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    RepairOrder.objects.filter(pk=order.pk).update(status="paid", paid_at=an_hour_ago)
    outbox_write(kind="invoice", subject_id=order.pk, wake=False)
    owed = {"due_at": an_hour_ago, **(entry or {})}
    OutboxEntry.objects.filter(subject_id=str(order.pk)).update(**owed)
    if invoice:
        Invoice.objects.create(order=order, number=f"ML-TEST-{order.pk.hex[:8]}", **invoice)
    return RepairOrder.objects.get(pk=order.pk)


def outcomes(document: dict) -> list[tuple[str, str]]:
    return [(i["order"], i["outcome"]) for i in document["items"]]


def test_a_sent_invoice_is_not_sent_again_unless_forced(mailoutbox):
    order = paid_order({"status": "done"}, status=InvoiceStatus.SENT, sent_at=timezone.now())

    code, document = invoke_json("invoices", "resend", str(order.pk))
    assert code == 0
    assert outcomes(document) == [(str(order.pk), "already sent; --force to send a second one")]
    assert (document["summary"]["already_sent"], mailoutbox) == (1, [])

    code, forced = invoke_json("invoices", "resend", str(order.pk), "--force")
    assert code == 0
    assert forced["summary"]["sent"] == 1
    assert Invoice.objects.get(order=order).status == InvoiceStatus.SENT
    assert len(mailoutbox) == 1


def test_stuck_finds_what_reconcile_finds_and_a_second_run_changes_nothing(mailoutbox):
    lost = paid_order()  # owed an hour ago; no drainer ran it
    failed = paid_order({"status": "failed"}, status=InvoiceStatus.FAILED, attempts=9)
    paid_order({"status": "done"}, status=InvoiceStatus.SENT, sent_at=timezone.now())
    retrying = {"due_at": timezone.now() + timedelta(seconds=20)}
    paid_order(retrying, status=InvoiceStatus.PENDING, last_attempt_at=timezone.now())

    code, dry = invoke_json("invoices", "resend", "--stuck", "--dry-run")
    assert code == 0
    assert sorted(i["order"] for i in dry["items"]) == sorted([str(lost.pk), str(failed.pk)])
    assert dry["summary"]["sent"] == 2
    assert {i["outcome"] for i in dry["items"]} == {"would be sent"}
    assert not Invoice.objects.filter(order=lost).exists()
    assert mailoutbox == []

    result = invoke("invoices", "resend", "--stuck")
    assert result.exit_code == 0
    assert "sent" in result.stdout
    assert "exit code" in result.stdout
    assert len(mailoutbox) == 2
    assert {Invoice.objects.get(order=o).status for o in (lost, failed)} == {InvoiceStatus.SENT}

    code, again = invoke_json("invoices", "resend", "--stuck")
    assert (code, again["items"], len(mailoutbox)) == (0, [], 2)


def test_an_invoice_a_drainer_is_sending_now_is_left_to_it(mailoutbox):
    claimed = {"status": "running", "claimed_until": timezone.now() + timedelta(minutes=4)}
    order = paid_order(claimed, status=InvoiceStatus.PENDING)
    code, again = invoke_json("invoices", "resend", str(order.pk))
    assert code == 0
    assert again["summary"]["in_flight"] == 1
    assert mailoutbox == []


def test_a_failed_send_needs_a_person(settings):
    order = paid_order(status=InvoiceStatus.FAILED)
    RepairOrder.objects.filter(pk=order.pk).update(customer_email="3@invalid")
    code, document = invoke_json("invoices", "resend", str(order.pk))
    assert code == 1
    assert document["summary"]["not_sent"] == 1
    assert "3@invalid" in document["items"][0]["outcome"]


def test_unknown_orders_need_a_person_and_bad_input_is_a_usage_error():
    never_paid = new_order()
    unknown = uuid.uuid4()
    code, document = invoke_json("invoices", "resend", str(unknown), str(never_paid.pk))
    assert code == 1
    assert outcomes(document) == [
        (str(unknown), "no such order"),
        (str(never_paid.pk), "never paid: no invoice owed"),
    ]
    assert invoke("invoices", "resend").exit_code == 2
    assert invoke("invoices", "resend", "not-an-id").exit_code == 2


@pytest.fixture(scope="module")
def scratch_site(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database of the example site, for the console script."""
    database_url = f"sqlite:///{tmp_path_factory.mktemp('site') / 'db.sqlite3'}"
    subprocess.run(
        [sys.executable, str(EXAMPLE_PROJECT / "manage.py"), "migrate", "-v", "0"],
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        timeout=120,
    )
    return database_url


def test_the_console_script_answers_one_json_document(scratch_site):
    for command in (("reconcile",), ("invoices", "resend", "--stuck")):
        result = run_console_script(*command, "--json", database_url=scratch_site)
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["summary"]["exit_code"] == 0
        assert document["items"] == []
