"""Huey only wakes the drainer: one wake after a commit that wrote entries (deduplicated while
one is queued and not started), and a run every minute as the safety net. A wake that is lost (a
flushed queue, Redis down, a killed consumer) loses nothing: the entries are still due."""

from __future__ import annotations

import contextlib
import logging

from django.core.cache import cache
from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task, db_task

from marketlink import conf
from marketlink.heartbeat import beat
from marketlink.outbox.drainer import drain, forget_done

logger = logging.getLogger(__name__)

WAKE_KEY = "marketlink:outbox:wake"
# A queued wake older than this is taken for lost, and another may be queued.
WAKE_TTL = 60


@db_task()
def drain_outbox() -> dict[str, int]:
    # Forgotten before claiming: an entry committed from now on queues its own wake. A cache
    # outage only costs a redundant wake later.
    with contextlib.suppress(Exception):
        cache.delete(WAKE_KEY)
    return dict(drain())


@db_periodic_task(crontab(minute="*"))
def drain_outbox_periodically() -> dict[str, int]:
    beat()
    forget_done()
    return dict(drain())


def wake() -> None:
    """Ask a consumer to drain, unless a wake is queued and not yet started. The drain starts
    ``OUTBOX_WAKE_DELAY`` after the first wake, so what is owed meanwhile (a burst of payments)
    is sent as one batch. Never raises: the periodic run finds whatever a failed wake leaves
    due. With no consumer (Huey's immediate mode) it drains at once, here."""
    try:
        if HUEY.immediate:
            drain_outbox()
            return
        if not cache.add(WAKE_KEY, 1, timeout=WAKE_TTL):
            return
        delay = conf.get().OUTBOX_WAKE_DELAY
        if delay:
            drain_outbox.schedule(delay=delay)
        else:
            drain_outbox()
    except Exception as exc:
        logger.warning(
            "could not wake the outbox drainer (the periodic run will): %s",
            exc,
            extra={"event": "outbox.wake_failed"},
        )
