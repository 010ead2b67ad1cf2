"""The example site's settings as the scale rig runs it on every host (and in pytest).

The stores come from the environment as for any deployment of the example site
(``DATABASE_URL`` through PgBouncer with ``DATABASE_POOLING=transaction``, ``REDIS_URL`` and
``REDIS_SENTINELS``). What differs from the defaults, and why:

- every load comes from one client address (the client host), as from behind a load balancer
  that does not forward it: the per-address throttles are off, the per-user ones stay;
- ``BOOKING_THROTTLE_PER_USER`` is 8/min, so the throttle's test meets it in 12 requests;
- an invoice counts as owed after 60 s (the least ``INVOICE_GRACE_PERIOD`` allows), so the
  operator's recovery finds what a failover or a killed host lost within the session.
"""

from __future__ import annotations

from example_project.settings import *  # noqa: F403
from example_project.settings import MARKETLINK

MARKETLINK = {
    **MARKETLINK,
    "BOOKING_THROTTLE_PER_ADDRESS": None,
    "PUBLIC_PAGE_THROTTLE": None,
    "BOOKING_THROTTLE_PER_USER": "8/min",
    "INVOICE_GRACE_PERIOD": 60,
}
