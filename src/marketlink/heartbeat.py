"""The Huey consumer's heartbeat: the periodic jobs stamp the time they last ran, so
``marketlink doctor`` can tell a live consumer (with its scheduler) from none at all.

It lives in the Django cache, which every consumer and web worker of a production site share
(Redis); on the embedded default's local-memory cache it is per process, so doctor cannot see a
consumer there and says so.
"""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

_KEY = "marketlink:heartbeat"
# Longer than any sensible schedule gap, so a missing key means "not seen for a day", not "never".
_KEEP_SECONDS = 24 * 3600


def beat() -> None:
    """Record that a periodic job ran now. A cache outage must not fail the job it rides on."""
    try:
        cache.set(_KEY, timezone.now().isoformat(), _KEEP_SECONDS)
    except Exception:
        return


def last_beat() -> datetime | None:
    """When a periodic job last ran, if the cache remembers."""
    stamp = cache.get(_KEY)
    return datetime.fromisoformat(stamp) if stamp else None
