"""The invoice task: with real Huey consumers (``manage.py run_huey``) on Redis and PostgreSQL, it
runs after the paid webhook's commit, moves the order to processing and emails exactly once, also
when it is enqueued several times and consumers race; in immediate mode (the embedded default)
it runs inline. The order moves on to processing whether or not the email could be sent; a
failed send is retried with backoff by a consumer, and the invoice is marked failed once the
retries are spent, or at once in immediate mode (where a retry would go to a schedule nobody runs).

The Stripe-gateway tests (``test_stripe_gateway.py``) cover immediate mode with the Stripe
gateway, including the email's content; here the embedded default runs end to end through the
dummy gateway's hosted page.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import Client
from live_site import site_env, start_huey, stop, wait_for
from mail_outbox import sent_emails
from order_helpers import new_order
from payment_events import checkout_session, deliver, event

from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.testing.factories import VariantFactory

# What a consumer needs to import this module (for its mail backends).
TEST_PATH = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "support")]

WEBHOOK_SECRET = "whsec_invoice_worker"


def paid_transitions(order: RepairOrder) -> list[tuple[str, str]]:
    return list(
        OrderStatusChange.objects.filter(order=order).values_list("from_status", "to_status")
    )


# --- Real consumers on Redis -------------------------------------------------------------------


@pytest.fixture
def queue(settings: Any) -> Iterator[Any]:
    """The example site's Huey queue on REDIS_URL, emptied before and after."""
    from huey.contrib.djhuey import HUEY

    if HUEY.immediate or type(HUEY).__name__ != "RedisHuey":
        pytest.fail("the example settings should give a RedisHuey when REDIS_URL is set")
    settings.MARKETLINK = {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": "sk_test_invoice_worker",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    HUEY.flush()
    yield HUEY
    HUEY.flush()


@pytest.fixture
def consumers(outbox: Path) -> Iterator[Callable[..., list[Any]]]:
    """``start(count, email_backend=...)``: consumers mailing into ``outbox`` unless told another
    backend (one of this module's: ``TEST_PATH`` joins their path)."""
    started: list[Any] = []

    def start(count: int, email_backend: str | None = None) -> list[Any]:
        path = os.pathsep.join(filter(None, [*TEST_PATH, os.environ.get("PYTHONPATH")]))
        mail = {"EMAIL_BACKEND": email_backend, "EMAIL_FILE_PATH": None}
        if email_backend is None:
            mail = {
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(outbox),
            }
        env = site_env(PYTHONPATH=path, **mail)
        procs = [start_huey(env) for _ in range(count)]
        started.extend(procs)
        return procs

    yield start
    for proc in started:
        stop(proc)


def pay(order: RepairOrder) -> None:
    """The paid webhook, through the app, committed for real (so on-commit work is enqueued)."""
    body = event("checkout.session.completed", checkout_session(order))
    assert deliver(Client(), body, WEBHOOK_SECRET).status_code == 200


def emails(outbox: Path) -> list[str]:
    return sent_emails(outbox)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_consumer_sends_the_invoice_once_after_payment(queue, consumers, outbox):
    consumers(1)
    order = new_order()

    pay(order)

    wait_for(lambda: RepairOrder.objects.get(pk=order.pk).status == "processing")
    [email] = wait_for(lambda: emails(outbox))
    invoice = Invoice.objects.get(order=order)
    assert invoice.number in email
    assert f"To: {order.customer_email}" in email
    assert paid_transitions(order) == [("pending", "paid"), ("paid", "processing")]

    from marketlink.payments.tasks import send_invoice

    # The task again, twice (a retry, an operator's replay): nothing more is sent.
    results = [send_invoice(str(order.id)) for _ in range(2)]
    outcomes = [result.get(blocking=True, timeout=30) for result in results]
    assert outcomes == [f"invoice {invoice.number} was already sent"] * 2
    assert len(emails(outbox)) == 1
    assert len(paid_transitions(order)) == 2


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_racing_consumers_send_one_invoice(queue, consumers, outbox):
    """Three copies of the task are queued before any consumer runs; two consumers (two worker
    threads each) take them at once."""
    from marketlink.payments.tasks import send_invoice

    order = new_order()
    pay(order)  # enqueues the first copy on commit
    assert RepairOrder.objects.get(pk=order.pk).status == "paid"
    extra = [send_invoice(str(order.id)) for _ in range(2)]
    assert len(queue) == 3

    racers = consumers(2)

    outcomes = [result.get(blocking=True, timeout=30) for result in extra]
    wait_for(lambda: len(queue) == 0)
    for proc in racers:  # a graceful stop lets the tasks they run finish
        stop(proc, graceful=True)
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    assert len(emails(outbox)) == 1
    number = Invoice.objects.get(order=order).number
    assert set(outcomes) <= {f"invoice {number} sent", f"invoice {number} was already sent"}
    assert paid_transitions(order) == [("pending", "paid"), ("paid", "processing")]


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_consumer_fails_the_invoice_when_its_last_retry_fails(queue, consumers):
    """The mail server is down for good; two retries a second apart instead of eight over 21
    minutes (the same task, given fewer retries when enqueued)."""
    from marketlink.payments.tasks import send_invoice

    consumers(1, email_backend=f"{MailServerDown.__module__}.MailServerDown")
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")

    send_invoice.schedule(args=(str(order.id),), delay=0, retries=2, retry_delay=1)

    invoice = wait_for(
        lambda: Invoice.objects.filter(order=order, status=InvoiceStatus.FAILED).first()
    )
    assert invoice.attempts == 3
    assert "the mail server is down" in invoice.last_error
    assert invoice.sent_at is None
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    assert len(queue) == 0
    assert queue.scheduled() == []


# --- Immediate mode (the embedded default) -----------------------------------------------------


@pytest.fixture
def inline_tasks(settings: Any) -> Iterator[Any]:
    from huey.contrib.djhuey import HUEY

    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    was = HUEY.immediate
    HUEY.immediate = True
    HUEY.flush()
    yield HUEY
    HUEY.flush()
    HUEY.immediate = was


def pay_on_the_dummy_page(api: Any, customer: Any, variant: Any, capture: Any) -> Any:
    """Book, open the payment link, press Pay on the dummy's page; the success page's answer."""
    booked = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer).json()
    browser = Client()
    checkout = browser.get(booked["data"]["payment_url"])
    assert checkout.status_code == 303
    assert browser.get(checkout["Location"]).status_code == 200
    with capture(execute=True):
        paid = browser.post(checkout["Location"], {"action": "pay"})
    assert paid.status_code == 303
    assert f"/api/orders/{booked['data']['id']}/success/" in paid["Location"]
    return browser.get(paid["Location"]).json()


@pytest.mark.django_db
def test_the_embedded_default_invoices_inline(
    inline_tasks, api, customer_user, mailoutbox, django_capture_on_commit_callbacks
):
    """Dummy gateway, immediate Huey: book, open the link, press Pay on the dummy's page."""
    page = pay_on_the_dummy_page(
        api, customer_user, VariantFactory(stock=2), django_capture_on_commit_callbacks
    )
    order = RepairOrder.objects.get(pk=page["data"]["order_id"])
    assert order.status == "processing"
    [email] = mailoutbox
    invoice = Invoice.objects.get(order=order)
    assert invoice.number in email.subject
    assert invoice.status == InvoiceStatus.SENT
    assert page["data"]["status"] == "processing"


class FlakyMailer(LocmemBackend):
    """A mail server that is down for the first ``failures`` messages."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyMailer.failures > 0:
            FlakyMailer.failures -= 1
            raise ConnectionRefusedError("the SMTP server is down")
        return super().send_messages(messages)


class MailServerDown(LocmemBackend):
    """A mail server that answers every message with an error (a host's component)."""

    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPException("451 the mail server is down")


class WorkerStopped(LocmemBackend):
    """The worker is stopped while the mail goes out (Huey's consumer sees a KeyboardInterrupt)."""

    def send_messages(self, messages: Any) -> int:
        raise KeyboardInterrupt


def use_mailer(settings: Any, backend: type[LocmemBackend]) -> None:
    path = f"{backend.__module__}.{backend.__name__}"
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": path}}
    else:
        settings.EMAIL_BACKEND = path


@pytest.fixture
def flaky_mailer(settings: Any) -> type[FlakyMailer]:
    use_mailer(settings, FlakyMailer)
    FlakyMailer.failures = 2
    return FlakyMailer


@pytest.fixture
def queued_tasks(settings: Any) -> Iterator[Any]:
    """The queue as a consumer sees it (not immediate), each task run here by ``execute``."""
    from huey.contrib.djhuey import HUEY

    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    was = HUEY.immediate
    HUEY.immediate = False
    HUEY.flush()
    yield HUEY
    HUEY.flush()
    HUEY.immediate = was


@pytest.mark.django_db
def test_an_order_whose_invoice_cannot_be_sent_moves_on_and_can_be_completed(
    inline_tasks,
    settings,
    api,
    customer_user,
    vendor_user,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    use_mailer(settings, MailServerDown)
    variant = VariantFactory(service__vendor=vendor_user.marketlink_vendor)

    page = pay_on_the_dummy_page(api, customer_user, variant, django_capture_on_commit_callbacks)

    assert page["data"]["status"] == "processing"
    invoice = Invoice.objects.get(order_id=page["data"]["order_id"])
    assert invoice.status == InvoiceStatus.FAILED
    assert invoice.attempts == 1
    assert "SMTPException" in invoice.last_error
    assert "451 the mail server is down" in invoice.last_error
    assert invoice.last_attempt_at is not None
    assert invoice.sent_at is None
    assert mailoutbox == []
    done = api.post(f"/orders/{page['data']['order_id']}/complete/", user=vendor_user)
    assert done.status_code == 200
    assert done.json()["data"]["status"] == "completed"


@pytest.mark.django_db
def test_in_immediate_mode_a_failed_send_fails_the_invoice_at_once(
    inline_tasks, settings, mailoutbox, caplog
):
    """No consumer runs the schedule a retry would go to: the invoice says failed, not retrying."""
    from marketlink.payments.tasks import send_invoice

    use_mailer(settings, MailServerDown)
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")
    huey = inline_tasks

    with caplog.at_level(logging.ERROR, logger="marketlink"):
        send_invoice(str(order.id))

    assert huey.scheduled() == []
    invoice = Invoice.objects.get(order=order)
    assert invoice.status == InvoiceStatus.FAILED
    assert invoice.attempts == 1
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    assert any(
        invoice.number in record.getMessage() and "not sent" in record.getMessage()
        for record in caplog.records
    )


# Transactional: a task run as a consumer would closes the connection after it.
@pytest.mark.django_db(transaction=True)
def test_a_failed_send_is_retried_with_backoff_and_sent_once(
    queued_tasks, flaky_mailer, mailoutbox
):
    from marketlink.payments.tasks import send_invoice

    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")
    huey = queued_tasks

    huey.execute(send_invoice.s(str(order.id)))  # fails, schedules its retry

    [retry] = huey.scheduled()
    assert retry.retries == 7
    assert 5 < seconds_until(huey, retry.eta) <= 10
    assert mailoutbox == []
    # The order does not wait for the email; the invoice does, counting its attempts.
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.PENDING, 1)
    assert "the SMTP server is down" in invoice.last_error

    huey.storage.flush_schedule()
    huey.execute(retry, retry.eta)  # the retry fails too: the next one waits twice as long
    [second] = huey.scheduled()
    assert second.retries == 6
    assert 15 < seconds_until(huey, second.eta) <= 20

    huey.storage.flush_schedule()
    huey.execute(second, second.eta)  # the server is back
    assert huey.scheduled() == []
    assert len(mailoutbox) == 1
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempts, invoice.last_error) == (InvoiceStatus.SENT, 3, "")
    huey.execute(second, second.eta)  # a stray duplicate of the last try sends nothing
    assert len(mailoutbox) == 1
    assert paid_transitions(order) == [("paid", "processing")]


# Transactional: a task run as a consumer would closes the connection after it.
@pytest.mark.django_db(transaction=True)
def test_retries_run_out(queued_tasks, flaky_mailer, mailoutbox):
    """A mail server down for good: eight retries, each waiting twice as long, then it stops and
    the invoice is failed, for staff to see."""
    from marketlink.payments.tasks import send_invoice

    flaky_mailer.failures = 100
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")
    huey = queued_tasks
    huey.execute(send_invoice.s(str(order.id)))
    waits = []
    for _ in range(20):  # more would mean it never stops
        if not (scheduled := huey.scheduled()):
            break
        [retry] = scheduled
        waits.append(round(seconds_until(huey, retry.eta)))
        huey.storage.flush_schedule()
        huey.execute(retry, retry.eta)
    assert waits == [10, 20, 40, 80, 160, 320, 640, 1280]
    assert mailoutbox == []
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    invoice = Invoice.objects.get(order=order)
    assert (invoice.status, invoice.attempts) == (InvoiceStatus.FAILED, 9)
    assert "the SMTP server is down" in invoice.last_error


# Transactional: a task run as a consumer would closes the connection after it.
@pytest.mark.django_db(transaction=True)
def test_a_worker_stopped_mid_send_leaves_the_order_processing_and_the_invoice_findable(
    queued_tasks, settings, mailoutbox
):
    """Huey does not retry an interrupted task: the order must not be the one left waiting."""
    from marketlink.payments.selectors import invoices_needing_attention
    from marketlink.payments.tasks import send_invoice

    use_mailer(settings, WorkerStopped)
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")

    queued_tasks.execute(send_invoice.s(str(order.id)))

    assert queued_tasks.scheduled() == []
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"
    invoice = Invoice.objects.get(order=order)
    assert invoice.status == InvoiceStatus.PENDING
    assert list(invoices_needing_attention(stuck_after=timedelta(0))) == [invoice]


def seconds_until(huey: Any, eta: Any) -> float:
    now = datetime.now(UTC).replace(tzinfo=None) if huey.utc else datetime.now()
    return (eta - now).total_seconds()
