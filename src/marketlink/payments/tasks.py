"""Background work for payments (Huey; the host owns ``HUEY``). Tasks are enqueued with
``transaction.on_commit`` by the services, never inside a transaction."""

from __future__ import annotations

import logging

from huey.contrib.djhuey import db_task
from huey.exceptions import RetryTask

from marketlink.orders.models import RepairOrder
from marketlink.payments import invoices, services
from marketlink.payments.gateways.base import GatewayError

logger = logging.getLogger(__name__)

MAX_RETRIES = 8


def _backoff(task: object) -> int:
    """Seconds before the next try: 10, 20, 40... capped at an hour."""
    done = MAX_RETRIES - int(getattr(task, "retries", 0))
    return int(min(3600, 10 * 2**done))


@db_task(retries=MAX_RETRIES, context=True)
def send_invoice(order_id: str, task: object = None) -> str:
    """Email the invoice of a paid order and move it to processing; at most once per order."""
    try:
        return invoices.invoice_send(order_id=order_id)
    except Exception as exc:
        delay = _backoff(task)
        logger.warning("invoice for order %s failed (%s); retrying in %ss", order_id, exc, delay)
        raise RetryTask(delay=delay) from exc


@db_task(retries=MAX_RETRIES, context=True)
def refund_late_payment(order_id: str, task: object = None) -> str:
    """Refund a payment that came after its reservation ended, with no unit left to sell."""
    order = RepairOrder.objects.get(pk=order_id)
    try:
        return services.late_payment_refund(order=order)
    except GatewayError as exc:
        delay = _backoff(task)
        logger.warning(
            "refund of late payment for %s failed (%s); retry in %ss", order_id, exc, delay
        )
        raise RetryTask(delay=delay) from exc
