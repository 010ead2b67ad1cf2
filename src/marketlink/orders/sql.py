"""The booking path's statements, by name: compiled from the ORM's rules once, then run as SQL.

A booking runs on every ``POST /orders/``; building the equivalent ORM queries each time cost
about ten times the database's own time. So each statement here is compiled once per database
vendor from the catalogue's rules (``catalog.selectors.bookable``/``live``), which stay written
once, and each call only binds the variant's id (and the time) into the compiled parameters.
Everything else in orders stays ORM.

- :func:`read_into`: a bookable variant's stock, and what an order copies of it (name, price,
  vendor) written into the order;
- :func:`lapsed_any`: whether lapsed reservations still hold units of the variant;
- :func:`take_unit`: the conditional ``UPDATE … SET stock = stock - 1 … RETURNING stock``;
- :func:`take_unit_into` (PostgreSQL): that ``UPDATE`` and the order's ``INSERT`` in one
  statement, which also copies the variant into the order when nothing read it before;
- :func:`pay_when_pending`: the paying webhook's one statement on the order (found by id, the
  money checked, the payment recorded, the whole row returned), after the caller's own row
  (:class:`Claim`).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from django.db import connection
from django.db.models import DecimalField, F, Field, ForeignKey, Model

from marketlink.catalog.models import ServiceVariant
from marketlink.catalog.selectors import bookable, live
from marketlink.orders.models import OrderStatus, RepairOrder

# Stand for the variant id and the current time while a statement is compiled; their places in
# the parameters are where each call's values go.
_VARIANT = uuid.UUID(int=0)
_NOW = datetime(2000, 1, 1, tzinfo=UTC)
# What an order copies from its variant when it is placed (order field -> variant path).
COPIED = {
    "vendor": "service__vendor",
    "vendor_name": "service__vendor__business_name",
    "variant_name": "name",
    "unit_price": "price",
    "total_amount": "price",
    # The whole price, unless the caller reckons a platform fee (payouts on) before the write.
    "vendor_share": "price",
}
# The order's field that receives the stock left after its unit was taken.
STOCK_LEFT = "stock_after_reservation"


def field(model: type[Model], name: str) -> Field[Any, Any]:
    """A concrete field by name (typed: ``_meta.get_field`` may also answer a relation)."""
    return cast("Field[Any, Any]", model._meta.get_field(name))


def _db_value(model: type[Model], name: str, value: Any) -> Any:
    """A value as its column stores it, by Django's own conversion (SQLite keeps uuid hex)."""
    return field(model, name).get_db_prep_value(value, connection)


class _Compiled(NamedTuple):
    sql: str
    params: tuple[Any, ...]
    variant_at: tuple[int, ...]
    now_at: tuple[int, ...]

    def bind(self, variant_id: uuid.UUID, now: datetime | None = None) -> list[Any]:
        params = list(self.params)
        for at in self.variant_at:
            params[at] = _db_value(ServiceVariant, "id", variant_id)
        for at in self.now_at:
            params[at] = _db_value(RepairOrder, "expires_at", now)
        return params


def _compiled(sql: str, params: Any) -> _Compiled:
    variant = _db_value(ServiceVariant, "id", _VARIANT)
    now = _db_value(RepairOrder, "expires_at", _NOW)
    return _Compiled(
        sql,
        tuple(params),
        tuple(at for at, p in enumerate(params) if p == variant),
        tuple(at for at, p in enumerate(params) if p == now),
    )


def _column(model: type[Model], name: str) -> str:
    return str(connection.ops.quote_name(str(field(model, name).column)))


def _select(query: Any) -> _Compiled:
    return _compiled(*query.get_compiler(connection=connection).as_sql())


# ``vendor`` is each cache's key: the compiled SQL differs from one database to another.
@functools.cache
def _variant(vendor: str) -> _Compiled:
    """``SELECT id, <what an order copies, in COPIED's order>, stock`` of a bookable variant."""
    query = ServiceVariant.objects.filter(bookable(), pk=_VARIANT).order_by()
    # One alias per copied field, each path selected in its place: the price is copied twice
    # (unit price and total), and some Django releases select a repeated name only once.
    aliases = {f"copied_{n}": F(path) for n, path in enumerate(COPIED.values())}
    return _select(query.annotate(**aliases).values_list("id", *aliases, "stock").query)


@functools.cache
def _lapsed(vendor: str) -> _Compiled:
    orders = RepairOrder.objects.filter(
        variant_id=_VARIANT, status=OrderStatus.PENDING, expires_at__lte=_NOW
    )
    return _select(orders.order_by().values_list("pk")[:1].query)


@functools.cache
def _take(vendor: str) -> _Compiled:
    """``UPDATE … SET stock = stock - 1 WHERE <a live variant with a unit>``."""
    query = ServiceVariant.objects.filter(live(), pk=_VARIANT, stock__gte=1).query
    where, params = query.get_compiler(connection=connection).compile(query.where)
    table = connection.ops.quote_name(ServiceVariant._meta.db_table)
    stock = _column(ServiceVariant, "stock")
    sql = f"UPDATE {table} SET {stock} = {stock} - 1 WHERE ({where})"  # noqa: S608
    return _compiled(sql, params)


def _written(copied: bool) -> list[Field[Any, Any]]:
    """The order's columns its placing writes from Python: all but the stock left, and but
    what it copies from the variant unless the order already holds that copy."""
    skip = {STOCK_LEFT} if copied else {*COPIED, STOCK_LEFT}
    return [f for f in RepairOrder._meta.concrete_fields if f.name not in skip]


@functools.cache
def _take_into(vendor: str, copied: bool) -> _Compiled:
    """``copied``: ``WITH taken AS (UPDATE … RETURNING stock) INSERT … SELECT <the order>,
    taken.stock``. Otherwise the variant is read in the statement too, and the unit is taken
    only for a variant the ``INSERT`` reads (a live variant whose vendor stopped selling must
    not lose a unit without its order): ``WITH variant AS (SELECT …), taken AS (UPDATE … AND id
    IN (SELECT id FROM variant) RETURNING stock) INSERT … SELECT <the order>, variant.<copies>,
    taken.stock``, answering the copies too."""
    quote = connection.ops.quote_name
    take, stock = _take(vendor), _column(ServiceVariant, "stock")
    written = [quote(str(f.column)) for f in _written(copied)]
    left = _column(RepairOrder, STOCK_LEFT)
    table = quote(RepairOrder._meta.db_table)
    values = ", ".join(["%s"] * len(written))
    if copied:
        sql = (
            f"WITH taken AS ({take.sql} RETURNING {stock}) "  # noqa: S608
            f"INSERT INTO {table} ({', '.join([*written, left])}) "
            f"SELECT {values}, taken.{stock} FROM taken RETURNING {left}"
        )
        return _compiled(sql, take.params)
    variant = _variant(vendor)
    copies = [_column(RepairOrder, name) for name in COPIED]
    aliases = [f"c{n}" for n in range(len(COPIED))]
    pk = _column(ServiceVariant, "id")
    sql = (
        f"WITH variant (id, {', '.join(aliases)}, stock) AS ({variant.sql}), "  # noqa: S608
        f"taken AS ({take.sql} AND {pk} IN (SELECT id FROM variant) RETURNING {stock}) "
        f"INSERT INTO {table} ({', '.join([*written, *copies, left])}) "
        f"SELECT {values}, {', '.join(f'variant.{a}' for a in aliases)}, taken.{stock} "
        f"FROM variant, taken RETURNING {', '.join([*copies, left])}"
    )
    return _compiled(sql, [*variant.params, *take.params])


def _copy(order: RepairOrder, values: Any) -> None:
    """Set what the order copies of its variant, from a row (SQLite answers decimals as floats
    and uuids as hex: rebuilt as the ORM would)."""
    for name, value in zip(COPIED, values, strict=True):
        target = field(RepairOrder, name)
        if isinstance(target, DecimalField) and not isinstance(value, Decimal):
            value = Decimal(str(value)).quantize(Decimal(1).scaleb(-(target.decimal_places or 0)))
        elif isinstance(target, ForeignKey) and not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        setattr(order, target.attname, value)


def has_copy(order: RepairOrder) -> bool:
    """Whether the order already holds what it copies of its variant (read before its write)."""
    return order.vendor_id is not None


def read_into(order: RepairOrder, variant_id: uuid.UUID) -> int | None:
    """The stock of a bookable variant, after copying its name, price and vendor into ``order``
    unless it holds that copy already (a fee may have been reckoned from it); None when the
    variant is not bookable (archived, of an archived service or of a vendor who does not
    sell)."""
    read = _variant(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(read.sql, read.bind(variant_id))
        row = cursor.fetchone()
    if row is None:
        return None
    if not has_copy(order):
        _copy(order, row[1:-1])
    return int(row[-1])


def lapsed_any(variant_id: uuid.UUID, now: datetime) -> bool:
    """Whether pending orders whose reservation lapsed by ``now`` still hold units of it."""
    read = _lapsed(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(read.sql, read.bind(variant_id, now))
        return cursor.fetchone() is not None


def take_unit(variant_id: uuid.UUID) -> int | None:
    """Take one unit of a live variant in the caller's transaction: the stock left, or None when
    there is none. The row stays locked until that transaction ends, so whatever it writes next
    and the decrement commit or vanish together."""
    take = _take(connection.vendor)
    stock = _column(ServiceVariant, "stock")
    with connection.cursor() as cursor:
        cursor.execute(f"{take.sql} RETURNING {stock}", take.bind(variant_id))
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def take_unit_into(order: RepairOrder, variant_id: uuid.UUID) -> bool:
    """PostgreSQL only: take one unit of the variant and insert ``order`` (unsaved) in one
    statement, the stock left written into ``stock_after_reservation``, and the variant's name,
    price and vendor copied in the same statement unless the order already holds them
    (:func:`has_copy`). False when nothing was written: no free unit, or (copying) the variant
    is not bookable."""
    copied = has_copy(order)
    statement = _take_into(connection.vendor, copied)
    values = [f.get_db_prep_save(f.pre_save(order, True), connection) for f in _written(copied)]
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, [*statement.bind(variant_id), *values])
        row = cursor.fetchone()
    if row is None:
        return False
    if not copied:
        _copy(order, row[:-1])
    setattr(order, STOCK_LEFT, int(row[-1]))
    return True


def _pay_when_pending_sql(claimed: bool) -> str:
    """The order's conditional ``UPDATE``; ``claimed``: made only if the ``claimed`` statement
    of the same ``WITH`` wrote its row."""
    quote = connection.ops.quote_name
    col = functools.partial(_column, RepairOrder)
    status, intent, session = col("status"), col("payment_intent_id"), col("checkout_session_id")
    returned = ", ".join(quote(str(f.column)) for f in RepairOrder._meta.concrete_fields)
    guard = "AND EXISTS (SELECT 1 FROM claimed) " if claimed else ""
    return (
        f"UPDATE {quote(RepairOrder._meta.db_table)} SET {status} = %s, "  # noqa: S608
        f"{col('paid_at')} = %s, {intent} = COALESCE({intent}, %s), "
        f"{session} = COALESCE({session}, %s), {col('updated_at')} = %s "
        f"WHERE {col('id')} = %s AND {status} = %s AND {col('total_amount')} = %s "
        f"AND {col('currency')} = %s AND ({intent} IS NULL OR {intent} = %s) {guard}"
        f"RETURNING {returned}"
    )


class Claim(NamedTuple):
    """The caller's row written before the order's ``UPDATE`` (an ``INSERT … ON CONFLICT DO
    NOTHING RETURNING 1``): the order is paid only if it wrote its row. On PostgreSQL the two
    are one statement (a ``WITH``).

    Why first: a transaction that holds the order must never wait for another's row. The
    ``UPDATE`` records the payment intent, a unique column, so it locks the order against the
    foreign-key checks of every other transaction's rows about it (deferred to their
    ``COMMIT``); had it written its own row after it, a copy of the same row written
    uncommitted by a transaction that is waiting for the order would make each wait for the
    other (a deadlock, seen through PgBouncer with ten deliveries at once)."""

    sql: str
    params: list[Any]


def pay_when_pending(
    *,
    order_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    paid_at: datetime,
    payment_intent_id: str | None,
    session_id: str | None,
    claim: Claim | None = None,
) -> tuple[RepairOrder | None, bool]:
    """The pending order ``order_id`` of exactly ``amount`` in ``currency``, and with no other
    payment recorded on it, made paid by ``payment_intent_id`` (its checkout ``session_id``
    recorded unless one is): the row as it now is, or None when nothing matched; and whether
    ``claim`` wrote its row (False without one; when it wrote none the order is left alone)."""
    params = [
        OrderStatus.PAID,
        _db_value(RepairOrder, "paid_at", paid_at),
        payment_intent_id,
        session_id,
        _db_value(RepairOrder, "updated_at", paid_at),
        _db_value(RepairOrder, "id", order_id),
        OrderStatus.PENDING,
        _db_value(RepairOrder, "total_amount", amount),
        currency,
        payment_intent_id,
    ]
    with connection.cursor() as cursor:
        if claim is not None and connection.vendor == "postgresql":
            cursor.execute(
                f"WITH claimed AS ({claim.sql}), paid AS ({_pay_when_pending_sql(True)}) "  # noqa: S608
                "SELECT (SELECT count(*) FROM claimed), paid.* "
                "FROM (SELECT 1) AS one LEFT JOIN paid ON TRUE",
                [*claim.params, *params],
            )
            claimed, *row = cursor.fetchone()
            return (_order_from(tuple(row)) if row[0] is not None else None), bool(claimed)
        if claim is not None:
            cursor.execute(claim.sql, claim.params)
            if cursor.fetchone() is None:
                return None, False
        cursor.execute(_pay_when_pending_sql(False), params)
        paid = cursor.fetchone()
    return (_order_from(paid) if paid is not None else None), claim is not None


def _order_from(row: tuple[Any, ...]) -> RepairOrder:
    """A ``RETURNING`` of every column, as the ORM would have read it (its converters: uuids
    and decimals on SQLite, times)."""
    fields = RepairOrder._meta.concrete_fields
    values = []
    for model_field, value in zip(fields, row, strict=True):
        column = model_field.get_col(RepairOrder._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        for convert in converters:
            value = convert(value, column, connection)
        values.append(value)
    return RepairOrder.from_db(connection.alias, [f.attname for f in fields], values)
