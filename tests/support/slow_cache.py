"""A local-memory cache whose reads and writes take a few milliseconds, as a network cache's
do: it widens the window in which a read-modify-write of a shared count can lose an update."""

from __future__ import annotations

import time
from typing import Any

from django.core.cache.backends.locmem import LocMemCache

LATENCY = 0.005


class SlowLocMemCache(LocMemCache):
    def get(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(LATENCY)
        return super().get(*args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(LATENCY)
        super().set(*args, **kwargs)
