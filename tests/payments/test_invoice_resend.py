"""``marketlink invoices resend``: named orders or ``--stuck`` (the invoices reconcile finds),
never a second invoice for an order whose invoice was sent unless ``--force``; and both
``reconcile`` and ``invoices resend`` as the installed console script."""

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
from marketlink.payments.models import Invoice, InvoiceStatus

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dummy_gateway")]


def paid_order(**invoice: object) -> RepairOrder:
    """An order paid an hour ago, with an invoice in the given state (an hour old), or none."""
    order = new_order()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    RepairOrder.objects.filter(pk=order.pk).update(status="paid", paid_at=an_hour_ago)
    if invoice:
        Invoice.objects.create(order=order, number=f"ML-TEST-{order.pk.hex[:8]}", **invoice)
        Invoice.objects.filter(order=order).update(created_at=an_hour_ago)
    return RepairOrder.objects.get(pk=order.pk)


def outcomes(document: dict) -> list[tuple[str, str]]:
    return [(i["order"], i["outcome"]) for i in document["items"]]


def test_a_sent_invoice_is_not_sent_again_unless_forced(
    mailoutbox, django_capture_on_commit_callbacks
):
    order = paid_order(status=InvoiceStatus.SENT, sent_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        code, document = invoke_json("invoices", "resend", str(order.pk))
    assert code == 0
    assert outcomes(document) == [(str(order.pk), "already sent; --force to send a second one")]
    assert (document["summary"]["already_sent"], mailoutbox) == (1, [])

    with django_capture_on_commit_callbacks(execute=True):
        code, forced = invoke_json("invoices", "resend", str(order.pk), "--force")
    assert code == 0
    assert forced["summary"]["enqueued"] == 1
    assert Invoice.objects.get(order=order).status == InvoiceStatus.SENT
    assert len(mailoutbox) == 1


def test_stuck_finds_what_reconcile_finds_and_a_second_run_changes_nothing(
    mailoutbox, django_capture_on_commit_callbacks
):
    lost = paid_order()  # no invoice: its task was lost
    failed = paid_order(
        status=InvoiceStatus.FAILED, attempts=9, last_attempt_at=timezone.now() - timedelta(hours=1)
    )
    paid_order(status=InvoiceStatus.SENT, sent_at=timezone.now())
    paid_order(status=InvoiceStatus.PENDING, last_attempt_at=timezone.now())  # retrying

    with django_capture_on_commit_callbacks(execute=True):
        code, dry = invoke_json("invoices", "resend", "--stuck", "--dry-run")
    assert code == 0
    assert sorted(i["order"] for i in dry["items"]) == sorted([str(lost.pk), str(failed.pk)])
    assert dry["summary"]["enqueued"] == 2
    assert not Invoice.objects.filter(order=lost).exists()
    assert mailoutbox == []

    with django_capture_on_commit_callbacks(execute=True):
        result = invoke("invoices", "resend", "--stuck")
    assert result.exit_code == 0
    assert "enqueued again" in result.stdout
    assert "exit code" in result.stdout
    assert len(mailoutbox) == 2
    assert {Invoice.objects.get(order=o).status for o in (lost, failed)} == {InvoiceStatus.SENT}

    with django_capture_on_commit_callbacks(execute=True):
        code, again = invoke_json("invoices", "resend", "--stuck")
    assert (code, again["items"], len(mailoutbox)) == (0, [], 2)


def test_a_resend_in_flight_is_not_enqueued_twice(tasks_queued, django_capture_on_commit_callbacks):
    order = paid_order()
    with django_capture_on_commit_callbacks(execute=True):
        assert invoke_json("invoices", "resend", str(order.pk))[0] == 0
        code, again = invoke_json("invoices", "resend", str(order.pk))
    assert code == 0
    assert again["summary"]["in_flight"] == 1
    assert len(tasks_queued) == 1


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
