"""Background work for payments (Huey; the host owns ``HUEY``). Tasks are enqueued with
``transaction.on_commit`` by the services, never inside a transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey.api import Task
from huey.contrib.djhuey import HUEY, db_task

from marketlink.orders.models import RepairOrder
from marketlink.payments import invoices, services

logger = logging.getLogger(__name__)

MAX_RETRIES = 8
# Seconds before the first retry; each later one waits twice as long (10, 20, 40 ... ~21 min).
FIRST_RETRY_DELAY = 10
RETRY_BACKOFF = 2


# Huey's own retries, which count down; a RetryTask raised by the task would instead retry
# forever at one delay, since Huey does not count it against ``retries``.
RETRYING = {
    "retries": MAX_RETRIES,
    "retry_delay": FIRST_RETRY_DELAY,
    "retry_backoff": RETRY_BACKOFF,
}


def _logged(what: str, order_id: str, task: object, run: Callable[[], str]) -> str:
    try:
        return run()
    except Exception as exc:
        retries = getattr(task, "retries", 0)
        logger.warning("%s for order %s failed (%s); %s retries left", what, order_id, exc, retries)
        raise


def _last_try(task: Task | None) -> bool:
    """Whether a failure now is final: Huey's context task counts the retries left (0 on the
    last run). In immediate mode no consumer runs the schedule a retry would go to, so every try
    is the last one; called as a plain function (``call_local``) there is no task to retry."""
    return HUEY.immediate or task is None or not task.retries


@db_task(context=True, **RETRYING)
def send_invoice(order_id: str, task: Task | None = None) -> str:
    """Move a paid order to processing and email its invoice, at most once per order; a failed
    email is retried while retries are left, then the invoice is marked failed for staff."""
    return _logged(
        "invoice",
        order_id,
        task,
        lambda: invoices.invoice_send(order_id=order_id, last_try=_last_try(task)),
    )


@db_task(context=True, **RETRYING)
def refund_late_payment(
    order_id: str, payment_intent_id: str | None = None, task: object = None
) -> str:
    """Refund a payment that came after its reservation ended, with no unit left to sell."""
    order = RepairOrder.objects.get(pk=order_id)
    return _logged(
        "late payment refund",
        order_id,
        task,
        lambda: services.late_payment_refund(order=order, payment_intent_id=payment_intent_id),
    )


@db_task(context=True, **RETRYING)
def refund_duplicate_payment(order_id: str, payment_intent_id: str, task: object = None) -> str:
    """Refund a second payment for an order that another payment already paid."""
    order = RepairOrder.objects.get(pk=order_id)
    return _logged(
        "duplicate payment refund",
        order_id,
        task,
        lambda: services.duplicate_payment_refund(order=order, payment_intent_id=payment_intent_id),
    )
