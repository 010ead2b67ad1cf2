"""Invoices: numbered, rendered from templates a host can override, sent at most once.

``templates/marketlink/email/invoice_subject.txt``, ``invoice.txt`` and ``invoice.html`` are
ordinary Django templates: a host overrides them by putting its own at the same path in a
template directory that comes first.

The order never waits for the email. One transaction writes the pending invoice and moves the
order from paid to processing; only then is the email tried. So a mail server that is down, an
address nobody can deliver to, or a worker that dies mid-send leaves a processing order (the
vendor can complete it) with a pending or failed invoice, which is a queryable record of the
email still owed, never a paid order with nothing left to move it.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from marketlink import conf, money
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import TransitionRefused, order_transition
from marketlink.payments.models import Invoice, InvoiceStatus

logger = logging.getLogger(__name__)

ERROR_LIMIT = 2000


class InvoiceNotSent(Exception):
    """A try failed and another may succeed: the invoice stays pending for the next one."""


class UndeliverableAddress(ValueError):
    """No mail server can deliver to the order's address; trying again changes nothing."""


def invoice_number(order: RepairOrder) -> str:
    paid = order.paid_at or order.created_at
    return f"ML-{paid:%Y%m%d}-{order.id.hex[:10].upper()}"


def invoice_send(*, order_id: str, last_try: bool = True) -> str:
    """Move a paid order to processing, then send its invoice unless it was sent.

    A failed try is recorded on the invoice (attempts, when, the error). When ``last_try`` is
    false and the failure may pass (a mail server down, say), :class:`InvoiceNotSent` is raised
    for the caller to retry; otherwise the invoice becomes ``failed`` for staff.

    The invoice row is locked while the email goes out: a second worker running the same task
    waits, then sees it sent and sends nothing. (An email that left just before a crash, before
    the commit, would be sent again on retry: at-least-once is what SMTP allows.)
    """
    order = RepairOrder.objects.select_related("variant__service").get(pk=order_id)
    _open(order)
    failure: Exception | None = None
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(order=order)
        if invoice.status == InvoiceStatus.SENT:
            outcome = f"invoice {invoice.number} was already sent"
            _report(logging.INFO, "already_sent", order, invoice, outcome)
            return outcome
        invoice.attempts += 1
        invoice.last_attempt_at = timezone.now()
        try:
            _email(order, invoice)
        except Exception as exc:
            failure = exc
            gives_up = last_try or _permanent(exc)
            invoice.status = InvoiceStatus.FAILED if gives_up else InvoiceStatus.PENDING
            invoice.last_error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
        else:
            invoice.status = InvoiceStatus.SENT
            invoice.sent_at = invoice.last_attempt_at
            invoice.last_error = ""
        # Saved with the try it records, failed or not, in the transaction that holds the lock.
        invoice.save(
            update_fields=["status", "attempts", "last_attempt_at", "last_error", "sent_at"]
        )
    if failure is None:
        outcome = f"invoice {invoice.number} sent"
        _report(logging.INFO, "sent", order, invoice, outcome)
        return outcome
    if invoice.status == InvoiceStatus.PENDING:
        _report(logging.WARNING, "retrying", order, invoice, invoice.last_error)
        raise InvoiceNotSent(f"invoice {invoice.number}: {invoice.last_error}") from failure
    outcome = f"invoice {invoice.number} not sent, needs staff: {invoice.last_error}"
    _report(logging.ERROR, "failed", order, invoice, outcome)
    return outcome


def _report(level: int, outcome: str, order: RepairOrder, invoice: Invoice, detail: str) -> None:
    logger.log(
        level,
        "order %s: %s (attempt %d)",
        order.id,
        detail,
        invoice.attempts,
        extra={
            "event": f"invoice.{outcome}",
            "order_id": order.id,
            "variant_id": order.variant_id,
            "invoice_number": invoice.number,
            "attempts": invoice.attempts,
        },
    )


def _open(order: RepairOrder) -> None:
    """The pending invoice and the order's move to processing, in one transaction: before it
    commits nothing changed (a retry starts over), after it the order is no longer waiting."""
    with transaction.atomic():
        # One statement; a twin task's row (or a retry's own) stays as it is.
        Invoice.objects.bulk_create(
            [Invoice(order=order, number=invoice_number(order))], ignore_conflicts=True
        )
        # Refunded meanwhile, or a twin task moved it already: either way there is nothing to do.
        if order.status == OrderStatus.PAID:
            with contextlib.suppress(TransitionRefused):
                order_transition(
                    order_id=order.id,
                    to=OrderStatus.PROCESSING,
                    source=ChangeSource.TASK,
                    expected=OrderStatus.PAID,
                    note="invoice task",
                    known=order,
                )


def _permanent(exc: Exception) -> bool:
    """Failures a retry cannot mend: an address or header Django refuses (``ValueError``), or a
    server refusing every recipient for good (5xx; a 4xx, such as greylisting, may pass)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, ValueError)


def _undeliverable(address: str) -> bool:
    # ``.invalid`` is reserved (RFC 2606); marketlink gives ``<pk>@invalid`` to users without an
    # address. A relay would accept such a message and lose it, so it is never handed over.
    domain = address.rpartition("@")[2].lower()
    return not domain or domain == "invalid" or domain.endswith(".invalid")


def _shown(moment: datetime) -> datetime:
    """``moment`` in the time zone the email shows it in: the current one (``TIME_ZONE``, or
    the one a host activated), as Django's ``date`` filter would convert it."""
    if timezone.is_naive(moment):  # USE_TZ = False: stored in TIME_ZONE already
        return timezone.make_aware(moment)
    return timezone.localtime(moment)


def _zone_label(shown: datetime) -> str:
    """The zone a time is shown in, by name and offset at that moment (daylight saving time
    included): ``Europe/Berlin (UTC+01:00)``, or ``UTC``."""
    name = timezone.get_current_timezone_name()
    if name == "UTC":
        return name
    offset = shown.strftime("%z")
    return f"{name} (UTC{offset[:3]}:{offset[3:5]})"


def _email(order: RepairOrder, invoice: Invoice) -> None:
    if _undeliverable(order.customer_email):
        raise UndeliverableAddress(f"no deliverable address: {order.customer_email!r}")
    paid_at = _shown(order.paid_at or timezone.now())
    context = {
        "order": order,
        "invoice": invoice,
        "service_name": order.variant.service.name,
        "amount": money.format_amount(order.total_amount, order.currency),
        # A partial refund when the invoice is sent (the whole one is said by the status).
        "refunded": money.format_amount(order.amount_refunded, order.currency)
        if order.amount_refunded
        else "",
        "paid_at": paid_at,
        "time_zone": _zone_label(paid_at),
    }
    # One line whatever the stored names or a host's template hold: a line break in a header
    # makes Django refuse the message, on every try.
    subject = " ".join(render_to_string("marketlink/email/invoice_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("marketlink/email/invoice.txt", context),
        from_email=conf.get().INVOICE_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
        to=[order.customer_email],
    )
    message.attach_alternative(
        render_to_string("marketlink/email/invoice.html", context), "text/html"
    )
    message.send()
