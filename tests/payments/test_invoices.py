"""Invoices as staff and customers meet them: what the email says whatever is stored, what becomes
of an invoice that cannot be sent, and how staff find it and send it again.

How the outbox sends them (a consumer's drainer, retries, immediate mode) is in
``test_invoice_outbox.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from outbox_helpers import send_invoice

from marketlink.catalog.models import Service
from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_place
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.services import outbox_write
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

    send_invoice(order)

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

    send_invoice(order)

    assert mailoutbox == []
    invoice = Invoice.objects.get(order=order)
    assert invoice.status == InvoiceStatus.FAILED
    assert invoice.attempts == 1
    assert address in invoice.last_error
    assert RepairOrder.objects.get(pk=order.pk).status == "processing"


def test_staff_filter_failed_invoices_and_send_them_again(
    admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    failed = paid_order(customer_email="7@invalid")
    send_invoice(failed)
    sent = paid_order()
    send_invoice(sent)
    assert len(mailoutbox) == 1

    listing = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert listing.status_code == 200
    assert failed.invoice.number in listing.content.decode()
    assert sent.invoice.number not in listing.content.decode()

    # The customer gave a real address meanwhile; staff select both invoices and send again.
    RepairOrder.objects.filter(pk=failed.pk).update(customer_email="real@example.com")
    selected = [str(failed.invoice.pk), str(sent.invoice.pk)]
    for _ in range(2):  # twice: the second time there is nothing left to send
        with django_capture_on_commit_callbacks(execute=True):
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
    send_invoice(order)
    invoice = Invoice.objects.get(order=order)

    page = admin_client.get(reverse(CHANGELIST), {"needs_attention": "yes"})

    assert page.status_code == 200
    assert invoice.number in page.content.decode()
    detail = admin_client.get(
        reverse("admin:marketlink_payments_invoice_change", args=[invoice.pk])
    )
    assert "8@invalid" in detail.content.decode()


def owed_since(order: RepairOrder, when: Any) -> None:
    """``order``'s invoice owed since ``when`` (its entry due then), and no drainer ran it."""
    outbox_write(kind="invoice", subject_id=order.pk, wake=False)
    OutboxEntry.objects.filter(subject_id=str(order.pk)).update(due_at=when)


def test_invoices_needing_attention_are_the_failed_and_the_stuck(mailoutbox):
    failed = paid_order(customer_email="9@invalid")
    send_invoice(failed)
    sent = paid_order()
    send_invoice(sent)
    long_ago = timezone.now() - timedelta(hours=2)
    # Owed two hours ago and no drainer ran it (no consumer); one waiting for its retry.
    stuck = paid_order()
    Invoice.objects.create(order=stuck, number="ML-STUCK", attempts=1, last_attempt_at=long_ago)
    owed_since(stuck, long_ago)
    retrying = paid_order()
    Invoice.objects.create(order=retrying, number="ML-RETRYING", attempts=1)
    owed_since(retrying, timezone.now() + timedelta(seconds=20))

    numbers = {invoice.number for invoice in invoices_needing_attention()}

    assert numbers == {failed.invoice.number, "ML-STUCK"}
    assert Invoice.objects.get(order=sent).status == InvoiceStatus.SENT


def test_invoices_whose_wake_was_lost_are_sent_once_by_the_periodic_drain(mailoutbox):
    """The payment's transaction owed the invoice, and the wake that was to tell a consumer was
    lost (a flushed queue, Redis down): the drainer's run every minute sends each once, whatever
    the gateway; a second run finds nothing owed."""
    from marketlink.outbox.tasks import drain_outbox_periodically
    from marketlink.payments.selectors import orders_owing_invoice

    sent = paid_order()
    send_invoice(sent)
    mailoutbox.clear()
    long_ago = timezone.now() - timedelta(hours=1)
    lost, killed_mid_send = paid_order(), paid_order()
    owed_since(lost, long_ago)
    Invoice.objects.create(order=killed_mid_send, number="ML-KILLED", attempts=1)
    owed_since(killed_mid_send, long_ago)
    assert set(orders_owing_invoice().values_list("pk", flat=True)) == {
        lost.pk,
        killed_mid_send.pk,
    }

    assert drain_outbox_periodically.call_local() == {"done": 2}

    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        [lost.customer_email, killed_mid_send.customer_email]
    )
    assert not orders_owing_invoice().exists()
    assert drain_outbox_periodically.call_local() == {}


def sent_email(mailoutbox: Any, order: RepairOrder) -> tuple[str, str]:
    """The invoice of ``order`` as the customer reads it: its text body and its HTML body."""
    send_invoice(order)
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
