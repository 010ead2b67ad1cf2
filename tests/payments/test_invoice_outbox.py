"""Invoices through the outbox: owed by the transaction that pays the order, sent by the drainer
in batches (one read, one mail connection), at most once per order; retried with a back-off
while the mail server fails, failed for staff when the retries are spent; and never lost by a
drainer stopped mid-send: its claim lapses and the next drainer sends what it left.

With real Huey consumers (``manage.py run_huey``) on Redis and PostgreSQL where it matters: a
consumer's drainer sends after the paying webhook commits, and two drainers in two processes
never send one invoice twice (``SELECT … FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.mail.backends.filebased import EmailBackend as FileBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from live_site import EXAMPLE, site_env, start_huey, stop, wait_for
from mail_outbox import sent_emails
from order_helpers import new_order
from outbox_helpers import drain
from payment_events import checkout_session, deliver, event

from marketlink.orders.models import ChangeSource, OrderStatus, OrderStatusChange, RepairOrder
from marketlink.orders.transitions import order_transition
from marketlink.outbox.models import OutboxEntry
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.testing.factories import VariantFactory

# What a drainer in another process needs to import this module (for its mail backends).
TEST_PATH = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "support")]
WEBHOOK_SECRET = "whsec_invoice_outbox"


def transitions(order: RepairOrder) -> list[tuple[str, str]]:
    return list(
        OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status")
    )


def paid(order: RepairOrder) -> RepairOrder:
    """Paid through the state machine, which owes the invoice in the same transaction."""
    return order_transition(
        order_id=order.pk, to=OrderStatus.PAID, source=ChangeSource.WEBHOOK, paid_at=timezone.now()
    )


def entry_of(order: RepairOrder) -> OutboxEntry:
    return OutboxEntry.objects.get(dedupe_key=f"invoice:{order.pk}")


def due_now(order: RepairOrder) -> float:
    """Seconds the entry waited to be due again, then make it due (time passes)."""
    entry = entry_of(order)
    waited = (entry.due_at - timezone.now()).total_seconds()
    OutboxEntry.objects.filter(pk=entry.pk).update(due_at=timezone.now())
    return waited


# --- Mail servers a test can be given -------------------------------------------------------


class FlakyMailer(LocmemBackend):
    """A mail server that is down for the first ``failures`` messages."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyMailer.failures > 0:
            FlakyMailer.failures -= 1
            raise ConnectionRefusedError("the SMTP server is down")
        return super().send_messages(messages)


class MailServerDown(LocmemBackend):
    """A mail server that answers every message with a temporary error."""

    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPException("451 the mail server is down")


class DrainerStopped(LocmemBackend):
    """The drainer's process is stopped while the mail goes out (a KeyboardInterrupt)."""

    def send_messages(self, messages: Any) -> int:
        raise KeyboardInterrupt


class CountingMailer(LocmemBackend):
    """Counts the connections opened, to see one per batch."""

    opened = 0

    def open(self) -> bool:
        CountingMailer.opened += 1
        return bool(super().open())


class SlowFileMailer(FileBackend):
    """Writes each message to a file, slowly: two drainers then overlap in time."""

    def send_messages(self, messages: Any) -> int:
        time.sleep(0.02 * len(messages))
        return int(super().send_messages(messages))


def use_mailer(settings: Any, backend: type[Any]) -> None:
    path = f"{backend.__module__}.{backend.__name__}"
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": path}}
    else:
        settings.EMAIL_BACKEND = path


# --- In this process ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_embedded_default_sends_the_invoice_once_the_payment_commits(
    dummy_gateway, api, customer_user, mailoutbox, django_capture_on_commit_callbacks
):
    """Dummy gateway, Huey in immediate mode: book, open the link, press Pay on the dummy's
    page; the wake after the payment's commit drains at once."""
    booked = api.post(
        "/orders/", {"variant_id": str(VariantFactory(stock=2).id)}, user=customer_user
    ).json()
    browser = Client()
    checkout = browser.get(booked["data"]["payment_url"])
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(checkout["Location"], {"action": "pay"})

    order = RepairOrder.objects.get(pk=booked["data"]["id"])
    assert order.status == "processing"
    [email] = mailoutbox
    invoice = Invoice.objects.get(order=order)
    assert invoice.number in email.subject
    assert (invoice.status, entry_of(order).status) == (InvoiceStatus.SENT, "done")


@pytest.mark.django_db
def test_a_batch_reads_once_and_opens_one_mail_connection(settings, mailoutbox):
    """Each invoice beyond the first costs two statements (marked sent, its entry done), not a
    read of its own; the whole batch goes through one connection of the mailer."""
    use_mailer(settings, CountingMailer)

    def statements(count: int) -> int:
        for order in [new_order() for _ in range(count)]:
            paid(order)
        CountingMailer.opened = 0
        with CaptureQueriesContext(connection) as queries:
            assert drain(kinds=["invoice"]) == {"done": count}
        assert CountingMailer.opened == 1
        return len(queries)

    assert statements(8) - statements(3) == 2 * 5
    assert Invoice.objects.filter(status=InvoiceStatus.SENT).count() == 11


@pytest.mark.django_db
def test_one_order_whose_invoice_cannot_be_written_fails_alone(mailoutbox):
    """An invoice number taken by another order (so its row cannot be written): that entry
    fails, the rest of the batch is sent."""
    from marketlink.payments.invoices import invoice_number

    unlucky, fine = paid(new_order()), paid(new_order())
    Invoice.objects.create(order=new_order(), number=invoice_number(unlucky))

    assert drain(kinds=["invoice"]) == {"done": 1, "failed": 1}

    assert [m.to for m in mailoutbox] == [[fine.customer_email]]
    failed = entry_of(unlucky)
    assert (failed.status, failed.needs_attention) == ("failed", True)


@pytest.mark.django_db
def test_an_invoice_that_cannot_be_sent_leaves_the_order_processing_and_completable(
    settings, api, vendor_user, mailoutbox
):
    use_mailer(settings, MailServerDown)
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(vendor=vendor_user.marketlink_vendor)
    paid(order)

    assert drain(kinds=["invoice"]) == {"retry": 1}

    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.attempts, invoice.sent_at) == (InvoiceStatus.PENDING, 1, None)
    assert "451 the mail server is down" in invoice.last_error
    assert entry_of(order).status == "pending"
    assert mailoutbox == []
    done = api.post(f"/orders/{order.pk}/complete/", user=vendor_user)
    assert done.json()["data"]["status"] == "completed"


@pytest.mark.django_db
def test_a_failed_send_is_retried_with_a_back_off_and_sent_once(settings, mailoutbox):
    use_mailer(settings, FlakyMailer)
    FlakyMailer.failures = 2
    order = paid(new_order())

    assert drain() == {"retry": 1}
    assert 5 < due_now(order) <= 10
    assert drain() == {"retry": 1}
    assert 15 < due_now(order) <= 20
    assert drain() == {"done": 1}

    assert len(mailoutbox) == 1
    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.attempts, invoice.last_error) == (InvoiceStatus.SENT, 3, "")
    assert drain() == {}  # nothing owed any more
    assert transitions(order) == [("pending", "paid"), ("paid", "processing")]


@pytest.mark.django_db
def test_retries_run_out_and_the_invoice_fails_for_staff(settings, mailoutbox):
    """A mail server down for good: eight retries, each waiting twice as long, then it stops."""
    use_mailer(settings, FlakyMailer)
    FlakyMailer.failures = 100
    order = paid(new_order())
    waits = []
    for _ in range(20):  # more would mean it never stops
        if drain() != {"retry": 1}:
            break
        waits.append(round(due_now(order)))

    assert waits == [10, 20, 40, 80, 160, 320, 640, 1280]
    assert mailoutbox == []
    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.FAILED, 9)
    entry = entry_of(order)
    assert (entry.status, entry.needs_attention) == ("failed", True)
    assert "the SMTP server is down" in entry.last_error
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"


@pytest.mark.django_db
def test_a_drainer_stopped_mid_send_leaves_it_to_the_next_once_its_claim_lapses(
    settings, mailoutbox
):
    use_mailer(settings, DrainerStopped)
    order = paid(new_order())
    with pytest.raises(KeyboardInterrupt):
        drain()
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    assert entry_of(order).status == "running"
    assert drain() == {}  # its claim still holds: no second drainer takes it

    use_mailer(settings, LocmemBackend)
    OutboxEntry.objects.filter(pk=entry_of(order).pk).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert drain() == {"done": 1}
    assert len(mailoutbox) == 1
    assert Invoice.objects.get(order=order).status == InvoiceStatus.SENT


# --- Real consumers and drainers in processes of their own ----------------------------------


@pytest.fixture
def queue(settings: Any) -> Iterator[Any]:
    """The example site's Huey queue on REDIS_URL, emptied before and after."""
    from huey.contrib.djhuey import HUEY

    if HUEY.immediate or type(HUEY).__name__ != "RedisHuey":
        pytest.fail("the example settings should give a RedisHuey when REDIS_URL is set")
    settings.MARKETLINK = {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": "sk_test_invoice_outbox",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    HUEY.flush()
    yield HUEY
    HUEY.flush()


def mailing_env(outbox: Path, backend: type[Any] = FileBackend) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [*TEST_PATH, os.environ.get("PYTHONPATH")]))
    return site_env(
        PYTHONPATH=path,
        EMAIL_BACKEND=f"{backend.__module__}.{backend.__name__}",
        EMAIL_FILE_PATH=str(outbox),
    )


@pytest.fixture
def consumers(outbox: Path) -> Iterator[Callable[[int], None]]:
    started: list[Any] = []

    def start(count: int) -> None:
        started.extend(start_huey(mailing_env(outbox)) for _ in range(count))

    yield start
    for proc in started:
        stop(proc)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_consumer_sends_the_invoice_once_the_paying_webhook_commits(queue, consumers, outbox):
    consumers(1)
    order = new_order()

    body = event("checkout.session.completed", checkout_session(order))
    assert deliver(Client(), body, WEBHOOK_SECRET).status_code == 200

    wait_for(lambda: entry_of(order).status == "done", what="the invoice's entry done")
    [email] = sent_emails(outbox)
    invoice = Invoice.objects.get(order=order)
    assert invoice.number in email
    assert f"To: {order.customer_email}" in email
    assert transitions(order) == [("pending", "paid"), ("paid", "processing")]


# Each drainer says when it is set up and waits for the word to start: Python and Django start
# at different speeds on a loaded machine, and one drainer could otherwise finish before the other
# begins.
DRAIN = (
    "import sys, django; django.setup(); from marketlink.outbox.drainer import drain; "
    "print('ready', flush=True); sys.stdin.readline(); print(drain(batch=4)['done'])"
)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_drainers_at_once_never_send_one_invoice_twice(outbox):
    """Two processes drain the same 40 owed invoices at once: each is claimed by one of them
    (``SKIP LOCKED``), so every invoice goes out once."""
    orders = [paid(new_order(stock=2)) for _ in range(40)]
    env = mailing_env(outbox, SlowFileMailer)
    env["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLE), env["PYTHONPATH"]])
    drainers = [
        subprocess.Popen(
            [sys.executable, "-c", DRAIN],
            env=env,
            cwd=str(EXAMPLE),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in drainers:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in drainers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    sent_by = [int(proc.communicate(timeout=120)[0]) for proc in drainers]

    assert sum(sent_by) == 40
    assert min(sent_by) > 0, f"the drainers did not overlap: {sent_by}"
    emails = sent_emails(outbox)
    assert len(emails) == 40
    for order in orders:
        number = Invoice.objects.get(order=order).number
        assert sum(number in email for email in emails) == 1
    entries = OutboxEntry.objects.filter(kind="invoice")
    assert {(entry.status, entry.attempts) for entry in entries} == {("done", 1)}
