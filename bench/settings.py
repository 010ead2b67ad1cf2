"""The example site's settings plus the bench app, for ``bench/run.py``.

Needs the repository root and ``example_project/`` on ``sys.path``. ``DATABASE_URL`` and
``REDIS_URL`` come from the environment as for the example site (the runner points them at a
dedicated database and Redis db). ``DEBUG`` is off unless the environment says otherwise: a
benchmark of a debug server measures its query log.
"""

from __future__ import annotations

import os

os.environ.setdefault("DEBUG", "0")

from example_project.settings import *  # noqa: F403
from example_project.settings import INSTALLED_APPS, MARKETLINK

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
# The storm logs in 50 customers' worth of traffic from one address: no throttling here.
MARKETLINK = {
    **MARKETLINK,
    "LOGIN_THROTTLE": "1000000/min",
    "REGISTER_THROTTLE": "1000000/min",
}
# ``run.py --lock-backend database`` measures bookings on the database row lock alone.
if os.environ.get("BENCH_LOCK_BACKEND"):
    MARKETLINK["LOCK_BACKEND"] = os.environ["BENCH_LOCK_BACKEND"]
# ``run.py --switch-interval S``: the workers' GIL switch interval (Python's default is 0.005 s).
if os.environ.get("BENCH_SWITCH_INTERVAL"):
    import sys

    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))
