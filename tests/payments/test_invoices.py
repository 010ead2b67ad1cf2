"""Invoices as staff and customers meet them: what the email says whatever is stored, what becomes
of an invoice that cannot be sent, and how staff find it and send it again.

The invoice task's modes (a consumer's retries, immediate mode) are in ``test_invoice_worker.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from marketlink.catalog.models import Service
from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_place
from marketlink.payments.invoices import invoice_send
from marketlink.payments.models import Invoice, InvoiceStatus
from marketlink.payments.selectors import invoices_needing_attention
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:marketlink_payments_invoice_changelist"


def paid_order(**stored: Any) -> RepairOrder:
    """A paid order, with ``stored`` written straight to its row (as old data would be)."""
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=VariantFactory().id
    )
    RepairOrder.objects.filter(pk=order.pk).update(
        **{"status": "paid", "paid_at": timezone.now(), **stored}
    )
    return RepairOrder.objects.get(pk=order.pk)


def test_a_line_break_stored_in_a_name_still_gives_a_one_line_subject(mailoutbox):
    order = paid_order(vendor_name="Spoke\n& Chain")
    Service.objects.filter(pk=order.variant.service_id).update(name="Bike\r\nrepair\u2028")

    invoice_send(order_id=str(order.id))

    [email] = mailoutbox
    invoice = Invoice.objects.get(order=order)
    assert email.subject == f"Invoice {invoice.number} for Bike repair (Spoke & Chain)"
    assert email.message()["Subject"] == email.subject
    assert invoice.status == InvoiceStatus.SENT
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"


@pytest.mark.parametrize("address", ["42@invalid", "someone@mail.invalid"])
def test_a_placeholder_address_fails_the_invoice_without_mailing_it(mailoutbox, address):
    """Host users without an email get ``<pk>@invalid``: a relay would accept it and lose it."""
    order = paid_order(customer_email=address)

    invoice_send(order_id=str(order.id))

    assert mailoutbox == []
    invoice = Invoice.objects.get(order=order)
    assert invoice.status == InvoiceStatus.FAILED
    assert invoice.attempts == 1
    assert address in invoice.last_error
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"


def test_staff_filter_failed_invoices_and_send_them_again(admin_client, mailoutbox):
    failed = paid_order(customer_email="7@invalid")
    invoice_send(order_id=str(failed.id))
    sent = paid_order()
    invoice_send(order_id=str(sent.id))
    assert len(mailoutbox) == 1

    listing = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert listing.status_code == 200
    assert failed.invoice.number in listing.content.decode()
    assert sent.invoice.number not in listing.content.decode()

    # The customer gave a real address meanwhile; staff select both invoices and send again.
    RepairOrder.objects.filter(pk=failed.pk).update(customer_email="real@example.com")
    selected = [str(failed.invoice.pk), str(sent.invoice.pk)]
    for _ in range(2):  # twice: the second time there is nothing left to send
        answer = admin_client.post(
            reverse(CHANGELIST), {"action": "send_again", "_selected_action": selected}
        )
        assert answer.status_code == 302

    assert [email.to for email in mailoutbox] == [[sent.customer_email], ["real@example.com"]]
    resent = Invoice.objects.get(order=failed)
    assert (resent.status, resent.attempts, resent.last_error) == (InvoiceStatus.SENT, 2, "")
    assert Invoice.objects.get(order=sent).attempts == 1


def test_staff_see_the_invoices_needing_attention_and_why(admin_client):
    order = paid_order(customer_email="8@invalid")
    invoice_send(order_id=str(order.id))
    invoice = Invoice.objects.get(order=order)

    page = admin_client.get(reverse(CHANGELIST), {"needs_attention": "yes"})

    assert page.status_code == 200
    assert invoice.number in page.content.decode()
    detail = admin_client.get(
        reverse("admin:marketlink_payments_invoice_change", args=[invoice.pk])
    )
    assert "8@invalid" in detail.content.decode()


def test_invoices_needing_attention_are_the_failed_and_the_stuck(mailoutbox):
    failed = paid_order(customer_email="9@invalid")
    invoice_send(order_id=str(failed.id))
    sent = paid_order()
    invoice_send(order_id=str(sent.id))
    long_ago = timezone.now() - timedelta(hours=2)
    # Pending: one whose worker died mid-send two hours ago, one being retried right now.
    stuck = Invoice.objects.create(
        order=paid_order(), number="ML-STUCK", attempts=1, last_attempt_at=long_ago
    )
    Invoice.objects.filter(pk=stuck.pk).update(created_at=long_ago)
    Invoice.objects.create(order=paid_order(), number="ML-RETRYING", attempts=1)
    never_tried = Invoice.objects.create(order=paid_order(), number="ML-NEVER")
    Invoice.objects.filter(pk=never_tried.pk).update(created_at=long_ago)

    numbers = {invoice.number for invoice in invoices_needing_attention()}

    assert numbers == {failed.invoice.number, "ML-STUCK", "ML-NEVER"}
    assert Invoice.objects.get(order=sent).status == InvoiceStatus.SENT


def test_invoices_no_task_will_send_are_enqueued_again_once_by_the_periodic_job(
    mailoutbox, tasks_run_inline, django_capture_on_commit_callbacks
):
    """A consumer killed mid-send leaves a pending invoice untried; a lost task leaves a paid
    order with none (the fault suite's consumer case). The periodic ``requeue_owed_invoices``
    has each sent once, whatever the gateway; a second run finds nothing owed."""
    from marketlink.payments.periodic import requeue_owed_invoices
    from marketlink.payments.selectors import orders_owing_invoice

    long_ago = timezone.now() - timedelta(hours=1)
    lost_task, killed_mid_send = paid_order(), paid_order()
    RepairOrder.objects.filter(pk__in=[lost_task.pk, killed_mid_send.pk]).update(paid_at=long_ago)
    Invoice.objects.create(order=killed_mid_send, number="ML-KILLED")
    Invoice.objects.filter(order=killed_mid_send).update(created_at=long_ago)
    sent = paid_order()
    invoice_send(order_id=str(sent.pk))
    mailoutbox.clear()

    assert set(orders_owing_invoice().values_list("pk", flat=True)) == {
        lost_task.pk,
        killed_mid_send.pk,
    }
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_owed_invoices.call_local() == 2

    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        [lost_task.customer_email, killed_mid_send.customer_email]
    )
    assert not orders_owing_invoice().exists()
    assert requeue_owed_invoices.call_local() == 0


def sent_email(mailoutbox: Any, order: RepairOrder) -> tuple[str, str]:
    """The invoice of ``order`` as the customer reads it: its text body and its HTML body."""
    invoice_send(order_id=str(order.id))
    [email] = mailoutbox
    [(html, _)] = email.alternatives
    return email.body, str(html)


@pytest.mark.parametrize(
    ("currency", "total", "shown"),
    [
        ("kwd", "10.50", "10.500 KWD"),  # three decimals: fils
        ("jpy", "4000", "4000 JPY"),  # no minor unit
        ("usd", "29.90", "29.90 USD"),
    ],
)
def test_the_invoice_shows_the_amount_with_its_currencys_decimal_places(
    mailoutbox, currency, total, shown
):
    order = paid_order(currency=currency, total_amount=Decimal(total), unit_price=Decimal(total))

    text, html = sent_email(mailoutbox, order)

    assert f"Amount:   {shown}\n" in text
    assert f"<td>{shown}</td>" in html


PAID = datetime(2026, 7, 1, 13, 21, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "shown"),
    [
        ("UTC", "2026-07-01 13:21 UTC"),
        ("Asia/Tokyo", "2026-07-01 22:21 Asia/Tokyo (UTC+09:00)"),
        # Summer time: four hours behind, not five.
        ("America/New_York", "2026-07-01 09:21 America/New_York (UTC-04:00)"),
    ],
)
def test_the_invoice_says_which_time_zone_its_payment_time_is_in(mailoutbox, settings, zone, shown):
    settings.TIME_ZONE = zone
    order = paid_order(paid_at=PAID)

    text, html = sent_email(mailoutbox, order)

    assert f"Paid:     {shown}\n" in text
    assert f"<td>{shown}</td>" in html
