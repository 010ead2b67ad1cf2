"""Invoices: numbered, rendered from templates a host can override, sent at most once.

``templates/marketlink/email/invoice_subject.txt``, ``invoice.txt`` and ``invoice.html`` are
ordinary Django templates: a host overrides them by putting its own at the same path in a
template directory that comes first.
"""

from __future__ import annotations

import contextlib
import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from marketlink import conf
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import TransitionRefused, order_transition
from marketlink.payments.models import Invoice

logger = logging.getLogger(__name__)


def invoice_number(order: RepairOrder) -> str:
    paid = order.paid_at or order.created_at
    return f"ML-{paid:%Y%m%d}-{order.id.hex[:10].upper()}"


def invoice_send(*, order_id: str) -> str:
    """Send the invoice unless it was sent, then move a paid order to processing.

    The invoice row is locked while the email goes out: a second worker running the same task
    waits, then sees ``sent_at`` and sends nothing. (An email that left just before a crash,
    before the commit, would be sent again on retry: at-least-once is what SMTP allows.)
    """
    order = RepairOrder.objects.select_related("variant__service").get(pk=order_id)
    with contextlib.suppress(IntegrityError), transaction.atomic():
        Invoice.objects.get_or_create(order=order, defaults={"number": invoice_number(order)})
    # Counted outside the sending transaction, so attempts that fail are counted too.
    Invoice.objects.filter(order=order, sent_at__isnull=True).update(attempts=F("attempts") + 1)
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(order=order)
        if invoice.sent_at is None:
            _email(order, invoice)
            invoice.sent_at = timezone.now()
            invoice.save(update_fields=["sent_at"])
            outcome = f"invoice {invoice.number} sent"
        else:
            outcome = f"invoice {invoice.number} was already sent"
    # Refunded meanwhile, or a twin task moved it already: either way there is nothing to do.
    with contextlib.suppress(TransitionRefused):
        order_transition(
            order_id=order.id,
            to=OrderStatus.PROCESSING,
            source=ChangeSource.TASK,
            expected=OrderStatus.PAID,
            note="invoice sent",
        )
    logger.info("order %s: %s", order_id, outcome)
    return outcome


def _email(order: RepairOrder, invoice: Invoice) -> None:
    context = {
        "order": order,
        "invoice": invoice,
        "service_name": order.variant.service.name,
        "paid_at": order.paid_at or timezone.now(),
    }
    subject = render_to_string("marketlink/email/invoice_subject.txt", context).strip()
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
