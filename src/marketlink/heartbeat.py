"""The Huey consumers' heartbeats, so ``marketlink doctor`` can tell a live consumer and its one
scheduler from none, or from two.

- :func:`beat`: a periodic job *ran* (whichever consumer's worker took it from the queue): some
  consumer works and some scheduler enqueues the jobs.
- :func:`scheduler_beat`: a scheduler *enqueued* a periodic job (Huey's ``enqueued`` signal, in
  the scheduler's own process). Every consumer takes tasks from the one shared queue, so only
  the enqueuing side says which scheduler is alive. Huey has no election: each consumer started
  without ``--no-periodic`` enqueues every job, and they run twice.

Each beat records the host and pid that made it. They live in ``HEARTBEAT_CACHE`` (the default
cache), which every consumer and web worker of a production site share (Redis, read from the
primary); on a local-memory cache they are per process, so doctor cannot see a consumer there
and says so.

Each scheduler has a key of its own holding when it first and last beat, and one index key lists
them; two schedulers writing the index at the same instant may drop one of them from it, and
that one adds itself back at its next beat (a minute later).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any, NamedTuple

from django.core.cache import caches
from django.utils import timezone

from marketlink import conf

_KEY = "marketlink:heartbeat"
_SCHEDULERS = "marketlink:heartbeat:schedulers"
# Longer than any sensible schedule gap, so a missing key means "not seen for a day", not "never".
_KEEP_SECONDS = 24 * 3600


class Beat(NamedTuple):
    """Who beat (``host``, ``pid``), when first and when last (the same for a job's beat)."""

    host: str
    pid: int
    first: datetime
    last: datetime

    @property
    def who(self) -> str:
        return f"host {self.host} pid {self.pid}"


def _store() -> Any:
    return caches[conf.get().HEARTBEAT_CACHE]


def _me() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


def beat() -> None:
    """Record that a periodic job ran now, here. A cache outage must not fail the job it rides
    on."""
    host, pid = _me()
    try:
        _store().set(_KEY, {"at": timezone.now(), "host": host, "pid": pid}, _KEEP_SECONDS)
    except Exception:
        return


def last_beat() -> Beat | None:
    """When, and where, a periodic job last ran, if the cache remembers."""
    stamp = _store().get(_KEY)
    if not isinstance(stamp, dict):
        return None
    return Beat(stamp["host"], stamp["pid"], stamp["at"], stamp["at"])


def _scheduler_key(host: str, pid: int) -> str:
    return f"{_SCHEDULERS}:{host}:{pid}"


def scheduler_beat(signal: str = "", task: Any = None, *args: Any, **kwargs: Any) -> None:
    """Receiver of Huey's ``enqueued`` signal: a periodic job enqueued by this process is its
    scheduler's beat. Other tasks, and immediate mode (no scheduler), are not."""
    from huey.api import PeriodicTask
    from huey.contrib.djhuey import HUEY

    if HUEY.immediate or not isinstance(task, PeriodicTask):
        return
    host, pid = _me()
    now = timezone.now()
    try:
        store = _store()
        mine = _scheduler_key(host, pid)
        first = (store.get(mine) or {}).get("first", now)
        store.set(mine, {"first": first, "last": now}, _KEEP_SECONDS)
        known = [tuple(entry) for entry in store.get(_SCHEDULERS) or []]
        alive = store.get_many([_scheduler_key(*entry) for entry in known])
        kept = [
            entry for entry in known if _scheduler_key(*entry) in alive and entry != (host, pid)
        ]
        store.set(_SCHEDULERS, [*kept, (host, pid)], _KEEP_SECONDS)
    except Exception:
        return


def scheduler_beats() -> list[Beat]:
    """Every scheduler seen in the last day, the latest beat first."""
    store = _store()
    known = [tuple(entry) for entry in store.get(_SCHEDULERS) or []]
    stamps = store.get_many([_scheduler_key(*entry) for entry in known])
    beats = [
        Beat(host, pid, stamp["first"], stamp["last"])
        for host, pid in known
        if (stamp := stamps.get(_scheduler_key(host, pid)))
    ]
    return sorted(beats, key=lambda b: b.last, reverse=True)
