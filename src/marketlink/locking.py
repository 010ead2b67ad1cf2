"""The one module that locks stock.

Two layers, as in the seed, made correct:

1. **A per-variant Redis lock** serialises the bookings of one variant across processes and
   machines, so a rush waits in Redis instead of piling up open transactions on one PostgreSQL row.
   It has an owner token and a TTL (a crashed holder's lock lapses), is released only by its owner
   (compare-and-delete in Lua), and a busy lock means *wait* — woken by the releaser through a
   signal list, bounded by ``LOCK_WAIT`` — never "sold out". It is held only around the database
   transaction, never across a call to a payment provider.
2. **The database** is the source of truth: the unit is taken with a conditional
   ``UPDATE … SET stock = stock - 1 WHERE stock >= 1`` inside the transaction that writes the
   order, and ``stock >= 0`` is a CHECK constraint. This alone is correct; the Redis lock only makes
   it cheaper under contention.

When the lock cache is not Redis (the embedded default) or Redis is unreachable, bookings go on with
the database alone; an outage is logged once, and Redis is not retried for a few seconds so every
request does not pay for a failing connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Model

from marketlink import conf
from marketlink.catalog.models import ServiceVariant
from marketlink.exceptions import ServiceUnavailable

logger = logging.getLogger(__name__)

REDIS_RETRY_AFTER = 5.0
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


class _RedisHealth:
    """Remembers a Redis outage so it is logged once and not retried on every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down_until = 0.0
        self.reported = False

    def usable(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self.down_until = time.monotonic() + REDIS_RETRY_AFTER
            if not self.reported:
                self.reported = True
                logger.warning(
                    "Redis lock store unreachable (%s); bookings continue on database locks "
                    "alone until it is back",
                    exc,
                )

    def succeeded(self) -> None:
        if self.reported:
            with self._lock:
                if self.reported:
                    self.reported = False
                    logger.warning("Redis lock store is reachable again; variant locks resume")


redis_health = _RedisHealth()


def lock_backend() -> str:
    """``redis`` or ``database``: what ``LOCK_BACKEND`` resolves to with the current CACHES."""
    config = conf.get()
    if config.LOCK_BACKEND != "auto":
        return config.LOCK_BACKEND
    cache = settings.CACHES.get(config.LOCK_CACHE, {})
    return "redis" if cache.get("BACKEND") == "django_redis.cache.RedisCache" else "database"


def _redis_client() -> Any | None:
    if lock_backend() != "redis" or not redis_health.usable():
        return None
    from django_redis import get_redis_connection

    return get_redis_connection(conf.get().LOCK_CACHE)


def _acquire(client: Any, key: str, token: str, ttl: float, wait: float) -> bool:
    deadline = time.monotonic() + wait
    signal = f"{key}:free"
    while True:
        if client.set(key, token, nx=True, px=max(1, int(ttl * 1000))):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        client.blpop([signal], timeout=min(remaining, _SIGNAL_WAIT))


@contextmanager
def variant_lock(variant_id: uuid.UUID) -> Iterator[None]:
    """Hold the variant's Redis lock for the block, or nothing when Redis is not in use.

    Raises :class:`ServiceUnavailable` (503, retry) if the lock stays busy for ``LOCK_WAIT``.
    """
    from redis.exceptions import RedisError

    client = _redis_client()
    if client is None:
        yield
        return
    config = conf.get()
    key = f"marketlink:lock:variant:{variant_id}"
    token = uuid.uuid4().hex
    try:
        acquired = _acquire(client, key, token, config.LOCK_TTL, config.LOCK_WAIT)
    except RedisError as exc:
        redis_health.failed(exc)
        yield
        return
    redis_health.succeeded()
    if not acquired:
        logger.warning(
            "variant %s lock busy for %.1fs; answering 503", variant_id, config.LOCK_WAIT
        )
        raise ServiceUnavailable("This service is in high demand; try again in a moment.")
    try:
        yield
    finally:
        try:
            client.eval(_RELEASE, 2, key, f"{key}:free", token)
        except RedisError as exc:  # the lock lapses by its TTL
            redis_health.failed(exc)


def take_unit(variant_id: uuid.UUID) -> int | None:
    """Take one unit in the caller's transaction; the stock left, or None when there is none.

    One conditional UPDATE … RETURNING: the row stays locked until the caller's transaction ends,
    so the order written next in that transaction and the decrement commit or vanish together.
    """
    table = ServiceVariant._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(table)} SET stock = stock - 1 "  # noqa: S608
            "WHERE id = %s AND stock >= 1 AND archived_at IS NULL RETURNING stock",
            [_db_uuid(variant_id)],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def take_unit_into(row: Model, variant_id: uuid.UUID, remaining_field: str) -> bool:
    """Take one unit and insert ``row`` (an unsaved order) in a single statement, writing the
    stock left into its ``remaining_field``. False when there is no free unit (nothing written).

    On PostgreSQL this is one ``WITH taken AS (UPDATE … RETURNING stock) INSERT … SELECT``: the
    decrement and the order commit together without a BEGIN/COMMIT round trip, which keeps the
    variant's lock held for the shortest time. Other databases answer False and the caller takes
    its transaction path (:func:`take_unit`, then a save).
    """
    if connection.vendor != "postgresql":
        return False
    quote = connection.ops.quote_name
    fields = [f for f in row._meta.concrete_fields if f.name != remaining_field]
    values = [f.get_db_prep_save(f.pre_save(row, True), connection) for f in fields]
    remaining = quote(str(getattr(row._meta.get_field(remaining_field), "column", "")))
    columns = ", ".join(quote(str(f.column)) for f in fields)
    placeholders = ", ".join(["%s"] * len(values))
    variant_table = quote(ServiceVariant._meta.db_table)
    sql = (
        f"WITH taken AS (UPDATE {variant_table} SET stock = stock - 1 "  # noqa: S608
        "WHERE id = %s AND stock >= 1 AND archived_at IS NULL RETURNING stock) "
        f"INSERT INTO {quote(row._meta.db_table)} ({columns}, {remaining}) "
        f"SELECT {placeholders}, taken.stock FROM taken RETURNING {remaining}"
    )
    # A savepoint only when called inside a transaction, so an IntegrityError (a duplicate
    # Idempotency-Key) leaves that transaction usable; at the top level the statement commits
    # by itself.
    atomic = transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()
    with atomic, connection.cursor() as cursor:
        cursor.execute(sql, [variant_id, *values])
        inserted = cursor.fetchone()
    if inserted is None:
        return False
    setattr(row, remaining_field, int(inserted[0]))
    row._state.adding = False
    row._state.db = connection.alias
    return True


def return_unit(variant_id: uuid.UUID) -> None:
    """Give one unit back (an order released its reservation), in the caller's transaction."""
    ServiceVariant.objects.filter(pk=variant_id).update(stock=F("stock") + 1)


def lock_variant_row(variant_id: uuid.UUID) -> ServiceVariant:
    """The variant with its row locked for the caller's transaction: the same lock bookings
    take, so a vendor's stock edit and a booking never interleave."""
    return ServiceVariant.objects.select_for_update().get(pk=variant_id)


def _db_uuid(value: uuid.UUID) -> Any:
    """A UUID as this database's UUID column stores it (SQLite keeps 32 hex characters)."""
    return value if connection.features.has_native_uuid_field else uuid.UUID(str(value)).hex
