"""The periodic reconcile (Huey): recent orders checked against the provider on a schedule, so
a lost webhook is mended without an operator; and, with any gateway, the pending refunds that
went quiet read again. (What a change owes, an invoice or a refund's ask, is the outbox's: its
drainer runs every minute.)

On by default with the Stripe gateway only (``PERIODIC_RECONCILE``): the dummy gateway's events
never leave the site, so nothing can be lost on the way. It runs every
``PERIODIC_RECONCILE_MINUTES`` minutes (on the minutes divisible by it), read live by the
schedule's test, and writes the consumer's heartbeat like every periodic job. It is imported by
``PaymentsConfig.ready()`` (Huey's autodiscovery only imports ``tasks`` modules).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from marketlink import conf
from marketlink.heartbeat import beat
from marketlink.orders.models import ChangeSource
from marketlink.payments.gateways.base import GatewayError
from marketlink.payments.models import RefundStatus
from marketlink.payments.reconcile import LimitReached, Result, reconcile_orders
from marketlink.payments.refunds import refund_follow_up
from marketlink.payments.rules import PermanentProblem
from marketlink.payments.selectors import refunds_to_follow_up

logger = logging.getLogger(__name__)

# "Recent": the released and paid orders of the last two hours (longer than the longest gap
# between two runs); pending orders and unsent invoices are checked whatever their age.
RECENT = timedelta(hours=2)
# A bound on one run's provider calls; what is left waits for the next run (or the CLI).
LIMIT = 500


def reconcile_is_due(moment: datetime) -> bool:
    """Huey's schedule test, asked by the scheduler once a minute."""
    config = conf.get()
    return config.periodic_reconcile() and moment.minute % config.PERIODIC_RECONCILE_MINUTES == 0


@db_periodic_task(reconcile_is_due)
def reconcile_recent_orders() -> dict[str, int]:
    """The reconcile command's checks over recent orders, fixing what differs."""
    beat()
    results: Counter[str] = Counter()
    for outcome in reconcile_orders(
        since=timezone.now() - RECENT, limit=LIMIT, source=ChangeSource.TASK
    ):
        if isinstance(outcome, LimitReached):
            results["limit_reached"] += 1
            logger.warning(
                "periodic reconcile: %s check stopped at %d orders", outcome.check, LIMIT
            )
            continue
        results[outcome.result] += 1
        if outcome.result != Result.AGREES:
            logger.log(
                logging.INFO if outcome.result == Result.FIXED else logging.WARNING,
                "periodic reconcile: order %s %s (%s): %s",
                outcome.order_id,
                outcome.result,
                outcome.kind or outcome.check,
                outcome.detail,
            )
    return dict(results)


@db_periodic_task(crontab(minute="*/10"))
def follow_up_refunds() -> int:
    """Read again each refund pending at the provider and untouched past the grace period,
    whatever the gateway: its events may have been lost, and money owed back to a customer is
    never left to wait for a person. (A refund asked for and not made yet is the outbox's.)"""
    beat()
    followed = 0
    quiet = refunds_to_follow_up().exclude(status=RefundStatus.REQUESTED)
    for refund in quiet.order_by("updated_at")[:LIMIT]:
        try:
            outcome = refund_follow_up(refund=refund, source=ChangeSource.TASK)
        except (GatewayError, PermanentProblem) as exc:
            logger.warning("refund %s: follow-up failed: %s", refund.pk, exc)
            continue
        followed += 1
        logger.info("refund %s followed up: %s", refund.pk, outcome)
    return followed
