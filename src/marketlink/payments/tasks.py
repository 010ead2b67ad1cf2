"""Background work for payments (Huey; the host owns ``HUEY``). Tasks are enqueued with
``transaction.on_commit``, never inside a transaction, and each one is safe to run twice."""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey.api import Task
from huey.contrib.djhuey import HUEY, db_task

from marketlink import metrics
from marketlink.payments import checkout, invoices, refunds
from marketlink.payments.models import Refund, RefundStatus

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


def last_try(task: Task | None) -> bool:
    """Whether a failure now is final: Huey's context task counts the retries left (0 on the
    last run). In immediate mode no consumer runs the schedule a retry would go to, so every try
    is the last one; called as a plain function (``call_local``) there is no task to retry."""
    return bool(HUEY.immediate) or task is None or not task.retries


def _logged(
    what: str,
    subject: str,
    task: Task | None,
    run: Callable[[], str],
    gave_up: Callable[[str], None] | None = None,
) -> str:
    try:
        return run()
    except Exception as exc:
        fields = {"event": "task.failed", "task": what, "subject": subject}
        if gave_up is not None and last_try(task):
            logger.error(
                "%s for %s failed for good: %s", what, subject, exc, extra={**fields, "final": True}
            )
            metrics.task_failed(what, final=True)
            gave_up(f"{type(exc).__name__}: {exc}")
        else:
            retries = getattr(task, "retries", 0)
            logger.warning(
                "%s for %s failed (%s); %s retries left",
                what,
                subject,
                exc,
                retries,
                extra={**fields, "final": False, "retries_left": retries},
            )
            metrics.task_failed(what, final=False)
        raise


@db_task(context=True, **RETRYING)
def send_invoice(order_id: str, task: Task | None = None) -> str:
    """Move a paid order to processing and email its invoice, at most once per order; a failed
    email is retried while retries are left, then the invoice is marked failed for staff."""
    return _logged(
        "invoice",
        f"order {order_id}",
        task,
        lambda: invoices.invoice_send(order_id=order_id, last_try=last_try(task)),
    )


@db_task(context=True, **RETRYING)
def refund_payment(refund_id: str, task: Task | None = None) -> str:
    """Ask the provider for a refund marketlink decided on (a duplicate or late payment); when
    the last try fails the refund is flagged for staff, never forgotten."""
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None or refund.status != RefundStatus.REQUESTED:
        return "nothing to ask for"
    return _logged(
        "refund",
        f"payment {refund.payment_intent_id} of order {refund.order_id}",
        task,
        lambda: refunds.refund_ask(refund=refund, source="task"),
        lambda error: refunds.refund_gave_up(refund_pk=refund.pk, error=error),
    )


@db_task(context=True, **RETRYING)
def expire_checkout(order_id: str, task: Task | None = None) -> str:
    """Close the provider's checkout of an order that was released while it was open."""
    return _logged(
        "closing the checkout",
        f"order {order_id}",
        task,
        lambda: checkout.checkout_expire(order_id=order_id),
    )
