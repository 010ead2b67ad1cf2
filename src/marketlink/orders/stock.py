"""Stock: where reservations (orders) meet units (the catalogue's variants).

Everything that moves or counts a unit lives here: what a booking reads of a variant, taking a
unit and giving it back, the lapsed reservations that still hold one, and the availability a
customer is shown. Two layers keep it correct, as in the seed:

1. **A per-variant Redis lock** (:func:`variant_lock`, over ``marketlink.locking``) serialises
   the bookings of one variant across processes, held only around the database transaction, never
   across a call to a payment provider.
2. **The database** is the source of truth: a unit is taken with a conditional
   ``UPDATE … SET stock = stock - 1 WHERE stock >= 1`` inside the transaction that writes the
   order, and ``stock >= 0`` is a CHECK constraint. This alone is correct; the lock only makes it
   cheaper under contention.

The booking path runs on every booking, so its two statements are compiled from the catalogue's
rules (``catalog.selectors.bookable``/``live``) once per database vendor and then executed as
plain SQL: building the equivalent ORM query each time costs about ten times the database's own
time, and compiling keeps those rules written once.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.db.models import F, Model
from django.utils import timezone

from marketlink import locking
from marketlink.catalog.models import ServiceVariant
from marketlink.catalog.selectors import bookable, live
from marketlink.exceptions import NotFound
from marketlink.orders.models import OrderStatus, RepairOrder

# Stands for the variant id while a statement is compiled; its place in the parameters is where
# each call's id goes.
_PROBE = uuid.UUID(int=0)


class _Compiled(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    id_at: int

    def bind(self, variant_id: uuid.UUID) -> list[Any]:
        params = list(self.params)
        params[self.id_at] = _db_id(variant_id)
        return params


def _compiled(sql: str, params: Sequence[Any]) -> _Compiled:
    return _Compiled(sql, tuple(params), list(params).index(_db_id(_PROBE)))


def _db_id(value: uuid.UUID) -> Any:
    """A variant id as its column stores it, by Django's own conversion (SQLite keeps hex)."""
    return ServiceVariant._meta.get_field("id").get_db_prep_value(value, connection)


# ``vendor`` is the cache's key: the compiled SQL differs from one database to another.
@functools.cache
def _booking_read(vendor: str) -> _Compiled:
    """``SELECT stock, name, price, vendor id, vendor name, whether the vendor can be paid out,
    its fee percentage`` of a bookable variant."""
    query = (
        ServiceVariant.objects.filter(bookable(), pk=_PROBE)
        .order_by()
        .values_list(
            "stock",
            "name",
            "price",
            "service__vendor",
            "service__vendor__business_name",
            "service__vendor__payouts_ready",
            "service__vendor__fee_percent",
        )
        .query
    )
    return _compiled(*query.get_compiler(connection=connection).as_sql())


@functools.cache
def _take(vendor: str) -> _Compiled:
    """``UPDATE … SET stock = stock - 1 WHERE <a live variant with a unit> RETURNING stock``."""
    query = ServiceVariant.objects.filter(live(), pk=_PROBE, stock__gte=1).query
    where, params = query.get_compiler(connection=connection).compile(query.where)
    table = connection.ops.quote_name(ServiceVariant._meta.db_table)
    stock = connection.ops.quote_name(str(ServiceVariant._meta.get_field("stock").column))
    sql = f"UPDATE {table} SET {stock} = {stock} - 1 WHERE {where} RETURNING {stock}"  # noqa: S608
    return _compiled(sql, params)


class BookableVariant(NamedTuple):
    stock: int
    name: str
    price: Decimal
    vendor_id: uuid.UUID
    vendor_name: str
    vendor_payouts_ready: bool
    vendor_fee_percent: Decimal | None


def variant_for_booking(*, variant_id: uuid.UUID) -> BookableVariant:
    """What a booking needs of a live variant of an active vendor, or :class:`NotFound`."""
    read = _booking_read(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(read.sql, read.bind(variant_id))
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such variant.")
    stock, name, price, vendor_id, vendor_name, payouts_ready, fee_percent = row
    return BookableVariant(
        stock=int(stock),
        name=name,
        # SQLite hands decimals back as floats: rebuild the stored two-place value.
        price=Decimal(str(price)).quantize(Decimal("0.01")),
        vendor_id=vendor_id if isinstance(vendor_id, uuid.UUID) else uuid.UUID(str(vendor_id)),
        vendor_name=vendor_name,
        vendor_payouts_ready=bool(payouts_ready),
        vendor_fee_percent=None if fee_percent is None else Decimal(str(fee_percent)),
    )


@contextmanager
def variant_lock(variant_id: uuid.UUID) -> Iterator[None]:
    """Hold the variant's lock for the block (see ``marketlink.locking.lock``)."""
    with locking.lock(f"variant:{variant_id}", {"variant_id": variant_id}):
        yield


def take_unit(variant_id: uuid.UUID) -> int | None:
    """Take one unit in the caller's transaction; the stock left, or None when there is none.

    One conditional UPDATE … RETURNING: the row stays locked until the caller's transaction ends,
    so the order written next in that transaction and the decrement commit or vanish together.
    """
    take = _take(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(take.sql, take.bind(variant_id))
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def take_unit_into(
    row: Model, variant_id: uuid.UUID, remaining_field: str, *, savepoint: bool = True
) -> bool:
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
    take = _take(connection.vendor)
    sql = (
        f"WITH taken AS ({take.sql}) "  # noqa: S608
        f"INSERT INTO {quote(row._meta.db_table)} ({columns}, {remaining}) "
        f"SELECT {placeholders}, taken.stock FROM taken RETURNING {remaining}"
    )
    # A savepoint only when called inside a transaction, so an IntegrityError (a duplicate
    # Idempotency-Key) leaves that transaction usable, unless the caller gives the whole
    # transaction up on one (``savepoint=False``); at the top level the statement commits by
    # itself.
    inside = connection.in_atomic_block and savepoint
    atomic = transaction.atomic() if inside else contextlib.nullcontext()
    with atomic, connection.cursor() as cursor:
        cursor.execute(sql, [*take.bind(variant_id), *values])
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


def expired_pending_ids(
    *, variant_id: uuid.UUID | None = None, limit: int = 100
) -> list[uuid.UUID]:
    """Pending orders whose reservation lapsed: they still hold a unit until they are released."""
    orders = RepairOrder.objects.filter(status=OrderStatus.PENDING, expires_at__lte=timezone.now())
    if variant_id is not None:
        orders = orders.filter(variant_id=variant_id)
    return list(orders.order_by("expires_at").values_list("id", flat=True)[:limit])


def available_stock(variant: ServiceVariant) -> int:
    """Units a customer can book now: the stock plus reservations that lapsed but that the expiry
    job has not released yet (booking reclaims them on the spot)."""
    return variant.stock + len(expired_pending_ids(variant_id=variant.id, limit=10_000))
