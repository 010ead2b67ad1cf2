"""The generic lock: one named lock across processes and machines, in Redis.

The stock module (``marketlink.orders.stock``) holds it per variant around the database
transaction that takes a unit, so a rush of bookings waits in Redis instead of piling up open
transactions on one PostgreSQL row. The lock has an owner token and a TTL (a crashed holder's lock
lapses), is released only by its owner (compare-and-delete in Lua), and a busy lock means *wait* —
woken by the releaser through a signal list, bounded by ``LOCK_WAIT`` — never "sold out". The
database stays the source of truth; this lock only makes contention cheaper.

When the lock cache is not Redis (the embedded default) or Redis is unreachable, the block runs
without it, on database locks alone; an outage is logged once, and Redis is not retried for a few
seconds so every request does not pay for a failing connection.

The Redis detection and ping live here too, so the lock, ``manage.py check`` and ``/health/`` agree
on what "the lock store" is.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.conf import settings

from marketlink import conf, metrics
from marketlink.exceptions import ServiceUnavailable
from marketlink.outages import Outage

logger = logging.getLogger(__name__)

REDIS_CACHE_BACKEND = "django_redis.cache.RedisCache"
_SIGNAL_WAIT = 0.05

# KEYS[1] lock, KEYS[2] its wake-up list; ARGV[1] the owner's token.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    redis.call('del', KEYS[1])
    redis.call('rpush', KEYS[2], '1')
    redis.call('ltrim', KEYS[2], -1, -1)
    redis.call('pexpire', KEYS[2], 2000)
    return 1
end
return 0
"""


redis_health = Outage(
    logger,
    event="lock_store",
    went_down="Redis lock store unreachable (%s); bookings continue on database locks alone "
    "until it is back",
    came_back="Redis lock store is reachable again; variant locks resume",
)


def cache_is_redis(alias: str) -> bool:
    """Whether the cache ``alias`` of ``CACHES`` is django-redis, the only store the lock uses."""
    return bool(settings.CACHES.get(alias, {}).get("BACKEND") == REDIS_CACHE_BACKEND)


def cache_reads_replicas(alias: str) -> bool:
    """Whether django-redis sends the reads of cache ``alias`` to a replica: with several
    servers in LOCATION (the first is the primary), or with its ``SentinelClient`` and a single
    URL (which it splits into a primary and a replica pool)."""
    config: dict[str, Any] = dict(settings.CACHES.get(alias, {}))
    if config.get("BACKEND") != REDIS_CACHE_BACKEND:
        return False
    location = config.get("LOCATION", "")
    client = str((config.get("OPTIONS") or {}).get("CLIENT_CLASS", ""))
    if isinstance(location, str):
        return client.endswith("SentinelClient") or len(location.split(",")) > 1
    return len(location) > 1


def lock_backend() -> str:
    """``redis`` or ``database``: what ``LOCK_BACKEND`` resolves to with the current CACHES."""
    config = conf.get()
    if config.LOCK_BACKEND != "auto":
        return config.LOCK_BACKEND
    return "redis" if cache_is_redis(config.LOCK_CACHE) else "database"


def ping_lock_store() -> None:
    """Ask the lock cache's Redis for a PONG; raises whatever the connection raises."""
    _lock_store().ping()


def _lock_store() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection(conf.get().LOCK_CACHE)


def _redis_client() -> Any | None:
    if lock_backend() != "redis" or not redis_health.usable():
        return None
    return _lock_store()


def _acquire(
    client: Any, key: str, token: str, ttl: float, wait: float, if_busy: Callable[[], object] | None
) -> tuple[bool, bool]:
    """``(acquired, waited)``: whether the lock is ours, and whether it was busy first."""
    deadline = time.monotonic() + wait
    signal = f"{key}:free"
    waited = False
    while True:
        if client.set(key, token, nx=True, px=max(1, int(ttl * 1000))):
            return True, waited
        if not waited and if_busy is not None:
            if_busy()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, waited
        waited = True
        client.blpop([signal], timeout=min(remaining, _SIGNAL_WAIT))


@contextmanager
def lock(
    name: str,
    log_fields: Mapping[str, Any] | None = None,
    *,
    if_busy: Callable[[], object] | None = None,
) -> Iterator[None]:
    """Hold the Redis lock ``marketlink:lock:<name>`` for the block, or nothing when Redis is not
    in use. Raises :class:`ServiceUnavailable` (503, retry) if it stays busy for ``LOCK_WAIT``.
    ``log_fields`` (the variant's id, say) go on the log lines of a wait, so they can be found.
    ``if_busy`` is called once when another holder has the lock, before waiting: a caller that
    can tell the wait is pointless (a sold-out variant) raises from it and does not queue.
    """
    from redis.exceptions import RedisError

    client = _redis_client()
    if client is None:
        yield
        return
    config = conf.get()
    key = f"marketlink:lock:{name}"
    token = uuid.uuid4().hex
    started = time.monotonic()
    try:
        acquired, waited = _acquire(client, key, token, config.LOCK_TTL, config.LOCK_WAIT, if_busy)
    except RedisError as exc:
        redis_health.failed(exc)
        yield
        return
    redis_health.succeeded()
    if waited:
        _report_wait(key, acquired, time.monotonic() - started, log_fields)
    if not acquired:
        raise ServiceUnavailable(
            "This service is in high demand; try again in a moment.",
            retry_after=_seconds_until_free(client, key),
        )
    try:
        yield
    finally:
        try:
            client.eval(_RELEASE, 2, key, f"{key}:free", token)
        except RedisError as exc:  # the lock lapses by its TTL
            redis_health.failed(exc)


def _seconds_until_free(client: Any, key: str) -> int:
    """When the lock lapses at the latest (its holder may have died holding it: a killed worker
    releases nothing), in whole seconds, at least 1."""
    from redis.exceptions import RedisError

    try:
        left_ms = int(client.pttl(key))
    except RedisError:
        return 1
    return max(1, math.ceil(left_ms / 1000))


def _report_wait(
    key: str, acquired: bool, seconds: float, fields: Mapping[str, Any] | None
) -> None:
    outcome = "acquired" if acquired else "timed_out"
    metrics.lock_waited(outcome, seconds)
    extra = {"event": f"lock.{outcome}_after_wait", "lock": key, "waited_ms": round(seconds * 1000)}
    if acquired:
        logger.debug(
            "lock %s acquired after %.3fs", key, seconds, extra={**extra, **(fields or {})}
        )
    else:
        logger.warning(
            "lock %s busy for %.1fs; answering 503", key, seconds, extra={**extra, **(fields or {})}
        )
