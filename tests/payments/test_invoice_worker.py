"""The invoice task: with real Huey consumers (``manage.py run_huey``) on Redis and PostgreSQL, it
runs after the paid webhook's commit, moves the order to processing and emails exactly once, also
when it is enqueued several times and consumers race; in immediate mode (the embedded default)
it runs inline. Failures are retried with backoff.

The Stripe-gateway tests (``test_stripe_gateway.py``) cover immediate mode with the Stripe
gateway, including the email's content; here the embedded default runs end to end through the
dummy gateway's hosted page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import django
import pytest
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.test import Client
from live_site import site_env, start_huey, stop
from mail_outbox import sent_emails
from payment_events import checkout_session, deliver, event

from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.orders.services import order_place
from marketlink.payments.models import Invoice
from marketlink.testing.factories import AccountFactory, VariantFactory

WEBHOOK_SECRET = "whsec_invoice_worker"


def wait_for(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition}")


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
def outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


@pytest.fixture
def consumers(outbox: Path) -> Iterator[Callable[[int], list[Any]]]:
    started: list[Any] = []

    def start(count: int) -> list[Any]:
        env = site_env(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(outbox),
        )
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


def new_order() -> RepairOrder:
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=VariantFactory().id
    )
    return order


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


# --- Immediate mode (the embedded default) -----------------------------------------------------


@pytest.fixture
def inline_tasks(settings: Any) -> Iterator[Any]:
    from huey.contrib.djhuey import HUEY

    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    was = HUEY.immediate
    HUEY.immediate = True
    yield HUEY
    HUEY.immediate = was


@pytest.mark.django_db
def test_the_embedded_default_invoices_inline(
    inline_tasks, api, customer_user, mailoutbox, django_capture_on_commit_callbacks
):
    """Dummy gateway, immediate Huey: book, open the link, press Pay on the dummy's page."""
    variant = VariantFactory(stock=2)
    booked = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).json()
    browser = Client()
    checkout = browser.get(booked["data"]["payment_url"])
    assert checkout.status_code == 303
    assert browser.get(checkout["Location"]).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        paid = browser.post(checkout["Location"], {"action": "pay"})
    assert paid.status_code == 303
    assert f"/api/orders/{booked['data']['id']}/success/" in paid["Location"]
    order = RepairOrder.objects.get(pk=booked["data"]["id"])
    assert order.status == "processing"
    [email] = mailoutbox
    assert Invoice.objects.get(order=order).number in email.subject
    page = browser.get(paid["Location"]).json()
    assert page["data"]["status"] == "processing"


class FlakyMailer(LocmemBackend):
    """A mail server that is down for the first ``failures`` messages."""

    failures = 0

    def send_messages(self, messages: Any) -> int:
        if FlakyMailer.failures > 0:
            FlakyMailer.failures -= 1
            raise ConnectionRefusedError("the SMTP server is down")
        return super().send_messages(messages)


@pytest.fixture
def flaky_mailer(settings: Any) -> type[FlakyMailer]:
    backend = f"{__name__}.FlakyMailer"
    if django.VERSION >= (6, 1):
        settings.MAILERS = {"default": {"BACKEND": backend}}
    else:
        settings.EMAIL_BACKEND = backend
    FlakyMailer.failures = 2
    return FlakyMailer


@pytest.mark.django_db
def test_a_failed_send_is_retried_with_backoff_and_sent_once(
    inline_tasks, flaky_mailer, mailoutbox
):
    from marketlink.payments.tasks import send_invoice

    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")
    huey = inline_tasks

    send_invoice(str(order.id))  # immediate: runs now, fails, schedules its retry

    [retry] = huey.scheduled()
    assert retry.retries == 7
    assert 5 < seconds_until(huey, retry.eta) <= 10
    assert mailoutbox == []
    assert RepairOrder.objects.get(pk=order.pk).status == "paid"

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
    huey.execute(second, second.eta)  # a stray duplicate of the last try sends nothing
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_retries_run_out(inline_tasks, flaky_mailer, mailoutbox):
    """A mail server down for good: eight retries, each waiting twice as long, then it stops."""
    from marketlink.payments.tasks import send_invoice

    flaky_mailer.failures = 100
    order = new_order()
    RepairOrder.objects.filter(pk=order.pk).update(status="paid")
    huey = inline_tasks
    send_invoice(str(order.id))
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
    assert RepairOrder.objects.get(pk=order.pk).status == "paid"


def seconds_until(huey: Any, eta: Any) -> float:
    now = datetime.now(UTC).replace(tzinfo=None) if huey.utc else datetime.now()
    return (eta - now).total_seconds()
