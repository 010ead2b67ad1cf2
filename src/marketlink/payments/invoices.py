"""Invoices: numbered, rendered from templates a host can override, sent once (a drainer killed
mid-send may send again the one message it was handing over: at-least-once is what SMTP allows).

``templates/marketlink/email/invoice_subject.txt``, ``invoice.txt`` and ``invoice.html`` are
ordinary Django templates: a host overrides them by putting its own at the same path in a
template directory that comes first.

An invoice is owed by the transaction that pays its order (an outbox entry of kind
``invoice``), and sent by the outbox's drainer in batches. The order never waits for the email:
one transaction writes the pending invoice and moves the order from paid to processing; only
then is the email tried. So a mail server that is down, an
address nobody can deliver to, or a worker that dies mid-send leaves a processing order (the
vendor can complete it) with a pending or failed invoice, which is a queryable record of the
email still owed, never a paid order with nothing left to move it.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import get_template
from django.utils import timezone

from marketlink import conf, money
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.transitions import orders_advance
from marketlink.outbox.claims import hold
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.registry import Done, Failed, Outcome, Retry
from marketlink.payments.models import Invoice, InvoiceStatus

logger = logging.getLogger(__name__)

ERROR_LIMIT = 2000


class UndeliverableAddress(ValueError):
    """No mail server can deliver to the order's address; trying again changes nothing."""


def invoice_number(order: RepairOrder) -> str:
    paid = order.paid_at or order.created_at
    # 16 hex digits of the order's id (64 bits): numbers never collide in practice.
    return f"ML-{paid:%Y%m%d}-{order.id.hex[:16].upper()}"


def invoices_send(entries: Sequence[OutboxEntry]) -> dict[uuid.UUID, Outcome]:
    """The outbox's ``invoice`` handler: send the invoices a batch of entries owes (one per
    order), unless sent (``payload["force"]``: an operator's resend sends a sent one again).

    One read for the batch, one transaction moving its paid orders to processing with their
    pending invoices, templates loaded once and one mail connection for all. Each invoice is
    marked sent as soon as its message is accepted, so a drainer killed mid-batch sends again
    only the message that was in flight (at-least-once is what SMTP allows); a failed try is
    recorded on the invoice and answered ``Retry`` (may pass) or ``Failed`` (will not)."""
    by_order = {uuid.UUID(entry.subject_id): entry for entry in entries}
    _open(list(by_order))
    orders = {
        order.pk: order
        for order in RepairOrder.objects.filter(pk__in=list(by_order)).select_related(
            "variant__service", "invoice"
        )
    }
    outcomes: dict[uuid.UUID, Outcome] = {}
    templates = _Templates()
    with _mailer() as mailer:
        for order_id, entry in by_order.items():
            if not hold(entry):
                continue  # another drainer took it over (this batch took too long)
            order = orders.get(order_id)
            if order is None:
                outcomes[entry.pk] = Failed("no such order")
                continue
            invoice = getattr(order, "invoice", None)
            if invoice is None:  # one order's trouble is its own: the rest of the batch goes on
                outcomes[entry.pk] = Failed("its invoice could not be written")
                continue
            outcomes[entry.pk] = _send_one(
                order, invoice, mailer, templates, force=bool(entry.payload.get("force"))
            )
    return outcomes


def _send_one(
    order: RepairOrder, invoice: Invoice, mailer: Any, templates: _Templates, *, force: bool
) -> Outcome:
    if invoice.status == InvoiceStatus.SENT and not force:
        _report(logging.INFO, "already_sent", order, invoice, "already sent")
        return Done(f"invoice {invoice.number} was already sent")
    tried = timezone.now()
    try:
        mailer.send_messages([_message(order, invoice, templates)])
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_LIMIT]
        permanent = _permanent(exc)
        Invoice.objects.filter(pk=invoice.pk).update(
            attempts=F("attempts") + 1,
            last_attempt_at=tried,
            last_error=error,
            **({"status": InvoiceStatus.FAILED} if permanent else {}),
        )
        if permanent:
            _report(logging.ERROR, "failed", order, invoice, error)
            return Failed(f"invoice {invoice.number}: {error}")
        _report(logging.WARNING, "retrying", order, invoice, error)
        return Retry(f"invoice {invoice.number}: {error}")
    Invoice.objects.filter(pk=invoice.pk).update(
        status=InvoiceStatus.SENT,
        sent_at=tried,
        attempts=F("attempts") + 1,
        last_attempt_at=tried,
        last_error="",
    )
    _report(logging.INFO, "sent", order, invoice, "sent")
    return Done(f"invoice {invoice.number} sent")


def invoice_gave_up(entry: OutboxEntry, error: str) -> None:
    """The outbox gave up on an invoice (its retries spent): it is ``failed``, for staff."""
    unsent = Invoice.objects.filter(order__pk=entry.subject_id).exclude(status=InvoiceStatus.SENT)
    unsent.update(status=InvoiceStatus.FAILED, last_error=error[:ERROR_LIMIT])


def _report(level: int, outcome: str, order: RepairOrder, invoice: Invoice, detail: str) -> None:
    logger.log(
        level,
        "order %s: invoice %s %s",
        order.id,
        invoice.number,
        detail,
        extra={
            "event": f"invoice.{outcome}",
            "order_id": order.id,
            "variant_id": order.variant_id,
            "invoice_number": invoice.number,
        },
    )


def _open(order_ids: list[uuid.UUID]) -> None:
    """The pending invoices and the orders' move to processing, in one transaction: before it
    commits nothing changed (a retry starts over), after it no order is left waiting. An order
    refunded meanwhile (or moved by an earlier try) stays as it is."""
    with transaction.atomic():
        paid = RepairOrder.objects.filter(pk__in=order_ids).only("pk", "paid_at", "created_at")
        # A retry's own rows stay as they are.
        Invoice.objects.bulk_create(
            [Invoice(order_id=order.pk, number=invoice_number(order)) for order in paid],
            ignore_conflicts=True,
        )
        orders_advance(
            order_ids=order_ids,
            to=OrderStatus.PROCESSING,
            expected=OrderStatus.PAID,
            source=ChangeSource.TASK,
            note="invoice being sent",
        )


class _Templates:
    """The three invoice templates, loaded once for a batch (a host's overrides included)."""

    def __init__(self) -> None:
        self.subject = get_template("marketlink/email/invoice_subject.txt")
        self.text = get_template("marketlink/email/invoice.txt")
        self.html = get_template("marketlink/email/invoice.html")


@contextlib.contextmanager
def _mailer() -> Iterator[Any]:
    """One open connection of the configured mailer for the batch: Django 6.1's ``mailers``,
    ``get_connection()`` (deprecated there) before."""
    mailers = getattr(mail, "mailers", None)
    connection = mailers.default if mailers is not None else mail.get_connection()
    connection.open()
    try:
        yield connection
    finally:
        with contextlib.suppress(Exception):  # a server that hung up: nothing left to close
            connection.close()


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


def _message(order: RepairOrder, invoice: Invoice, templates: _Templates) -> EmailMessage:
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
    subject = " ".join(templates.subject.render(context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=templates.text.render(context),
        from_email=conf.get().INVOICE_FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
        to=[order.customer_email],
    )
    message.attach_alternative(templates.html.render(context), "text/html")
    return message
