"""Background work for orders (Huey; the host owns the ``HUEY`` setting).

Expiry here is housekeeping: bookings reclaim lapsed reservations themselves and availability
counts them as free, so a late or dead expiry job never holds stock hostage.
"""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import HUEY, db_periodic_task
from huey.signals import SIGNAL_ENQUEUED

from marketlink.heartbeat import beat, scheduler_beat
from marketlink.orders.models import ChangeSource
from marketlink.orders.services import orders_expire

# Each periodic job a scheduler enqueues is that scheduler's beat (``marketlink.heartbeat``).
HUEY.signal(SIGNAL_ENQUEUED)(scheduler_beat)


@db_periodic_task(crontab(minute="*"))
def expire_reservations() -> int:
    beat()
    return orders_expire(source=ChangeSource.TASK)
