"""The example site's settings plus the bench app, for ``bench/run.py``.

Needs the repository root and ``example_project/`` on ``sys.path``. ``DATABASE_URL`` and
``REDIS_URL`` come from the environment as for the example site (the runner points them at a
dedicated database and Redis db). ``DEBUG`` is off unless the environment says otherwise: a
benchmark of a debug server measures its query log.

The payment gateway also comes from the runner: ``BENCH_GATEWAY`` ("stripe" or "dummy"; unset:
the example site's choice), ``BENCH_STRIPE_API_BASE`` (the runner's ``StripeStandIn``),
``BENCH_STRIPE_SECRET_KEY``, ``BENCH_STRIPE_WEBHOOK_SECRET`` and ``BENCH_LINK_MODE`` ("link" or
"eager"). Huey is the example's ``RedisHuey`` on the bench Redis db; the runner starts its
consumer (``manage.py run_huey``) on these settings too, so the invoices paid orders enqueue are
sent during the load.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "0")

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS, MARKETLINK
from marketlink.conf import ABUSE_LIMITS_OFF

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
# The load comes from one address and books, pays and cancels far past what one customer may:
# every throttle and per-customer limit off, as a host does for a load test (docs/security.md).
# Off, not merely high: a throttle set high would still cost its cache round trips per request.
MARKETLINK = {**MARKETLINK, **ABUSE_LIMITS_OFF}
# ``run.py --lock-backend database`` measures bookings on the database row lock alone.
if os.environ.get("BENCH_LOCK_BACKEND"):
    MARKETLINK["LOCK_BACKEND"] = os.environ["BENCH_LOCK_BACKEND"]
# The gateway the runner chose; receiving a webhook never calls Stripe, booking in link mode
# neither, so the secret key only has to satisfy the stand-in.
if os.environ.get("BENCH_GATEWAY"):
    MARKETLINK["PAYMENT_GATEWAY"] = os.environ["BENCH_GATEWAY"]
    MARKETLINK["STRIPE_SECRET_KEY"] = os.environ.get("BENCH_STRIPE_SECRET_KEY", "")
    MARKETLINK["STRIPE_WEBHOOK_SECRET"] = os.environ.get("BENCH_STRIPE_WEBHOOK_SECRET", "")
    MARKETLINK["STRIPE_API_BASE"] = os.environ.get("BENCH_STRIPE_API_BASE", "")
if os.environ.get("BENCH_LINK_MODE"):
    MARKETLINK["PAYMENT_LINK_MODE"] = os.environ["BENCH_LINK_MODE"]
# ``soak.py``: reservations short enough to lapse during the soak (the consumer's expiry job
# cancels them), and invoices owed soon enough that its owed-invoice job runs within it.
if os.environ.get("BENCH_RESERVATION_TTL"):
    MARKETLINK["RESERVATION_TTL"] = int(os.environ["BENCH_RESERVATION_TTL"])
if os.environ.get("BENCH_INVOICE_GRACE_PERIOD"):
    MARKETLINK["INVOICE_GRACE_PERIOD"] = int(os.environ["BENCH_INVOICE_GRACE_PERIOD"])
# ``run.py --switch-interval S``: the workers' GIL switch interval (Python's default is 0.005 s).
if os.environ.get("BENCH_SWITCH_INTERVAL"):
    import sys

    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
