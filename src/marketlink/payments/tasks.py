"""Background work for payments (Huey; the host owns ``HUEY``). Tasks are enqueued with
``transaction.on_commit`` by the services, never inside a transaction."""

from __future__ import annotations

import logging

from huey.contrib.djhuey import db_task

from marketlink.orders.models import RepairOrder
from marketlink.payments import invoices, services
from marketlink.payments.gateways.base import GatewayError

logger = logging.getLogger(__name__)

MAX_RETRIES = 8
# Seconds before the first retry; each later one waits twice as long (10, 20, 40 ... ~21 min).
# Huey's own retries, which count down: a RetryTask raised by the task would retry forever, at
# the same delay, since Huey does not count it against ``retries``.
FIRST_RETRY_DELAY = 10
RETRY_BACKOFF = 2


@db_task(
    retries=MAX_RETRIES,
    retry_delay=FIRST_RETRY_DELAY,
    retry_backoff=RETRY_BACKOFF,
    context=True,
)
def send_invoice(order_id: str, task: object = None) -> str:
    """Email the invoice of a paid order and move it to processing; at most once per order."""
    try:
        return invoices.invoice_send(order_id=order_id)
    except Exception as exc:
        logger.warning(
            "invoice for order %s failed (%s); %s retries left",
            order_id,
            exc,
            getattr(task, "retries", 0),
        )
        raise


@db_task(
    retries=MAX_RETRIES,
    retry_delay=FIRST_RETRY_DELAY,
    retry_backoff=RETRY_BACKOFF,
    context=True,
)
def refund_late_payment(order_id: str, task: object = None) -> str:
    """Refund a payment that came after its reservation ended, with no unit left to sell."""
    order = RepairOrder.objects.get(pk=order_id)
    try:
        return services.late_payment_refund(order=order)
    except GatewayError as exc:
        logger.warning(
            "refund of late payment for %s failed (%s); %s retries left",
            order_id,
            exc,
            getattr(task, "retries", 0),
        )
        raise


@db_task(
    retries=MAX_RETRIES,
    retry_delay=FIRST_RETRY_DELAY,
    retry_backoff=RETRY_BACKOFF,
)
def refund_duplicate_payment(order_id: str, payment_intent_id: str) -> str:
    """Refund a second payment for an order that another payment already paid."""
    order = RepairOrder.objects.get(pk=order_id)
    return services.duplicate_payment_refund(order=order, payment_intent_id=payment_intent_id)
