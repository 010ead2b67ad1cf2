"""The booking path's statements, by name: compiled from the ORM's rules once, then run as SQL.

A booking runs on every ``POST /orders/``; building the equivalent ORM queries each time cost
about ten times the database's own time. So each statement here is compiled once per database
vendor from the catalogue's rules (``catalog.selectors.bookable``/``live``), which stay written
once, and each call only binds the variant's id (and the time) into the compiled parameters.
Everything else in orders stays ORM.

- :func:`availability`: a bookable variant's stock and whether it has lapsed reservations;
- :func:`take_unit`: the conditional ``UPDATE … SET stock = stock - 1 … RETURNING stock``;
- :func:`take_unit_into` (PostgreSQL): that ``UPDATE`` and the order's ``INSERT``, copying the
  variant's name, price and vendor, in one statement;
- :func:`pay_when_pending`: the paying webhook's one statement on the order (found by id, the
  money checked, the payment recorded, the whole row returned).
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, cast

from django.db import connection
from django.db.models import Exists, F, Field, Model, OuterRef, QuerySet

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


def _stock() -> str:
    return _column(ServiceVariant, "stock")


def _select(query: Any) -> _Compiled:
    return _compiled(*query.get_compiler(connection=connection).as_sql())


# ``vendor`` is each cache's key: the compiled SQL differs from one database to another.
@functools.cache
def _availability(vendor: str) -> _Compiled:
    lapsed = RepairOrder.objects.filter(
        variant=OuterRef("pk"), status=OrderStatus.PENDING, expires_at__lte=_NOW
    )
    query = (
        ServiceVariant.objects.filter(bookable(), pk=_VARIANT)
        .annotate(lapsed=Exists(lapsed))
        .order_by()
        .values_list("stock", "lapsed")
    )
    return _select(query.query)


def copied(variant_id: uuid.UUID) -> QuerySet[ServiceVariant, tuple[Any, ...]]:
    """``id`` and what an order copies (``COPIED``, in order) of the variant, if bookable."""
    query = ServiceVariant.objects.filter(bookable(), pk=variant_id).order_by()
    # One alias per copied field, each path selected in its place: the price is copied twice
    # (unit price and total), and some Django releases select a repeated name only once.
    aliases = {f"copied_{n}": F(path) for n, path in enumerate(COPIED.values())}
    return query.annotate(**aliases).values_list("id", *aliases)


@functools.cache
def _copied(vendor: str) -> _Compiled:
    return _select(copied(_VARIANT).query)


@functools.cache
def _take(vendor: str) -> _Compiled:
    """``UPDATE … SET stock = stock - 1 WHERE <a live variant with a unit>``."""
    query = ServiceVariant.objects.filter(live(), pk=_VARIANT, stock__gte=1).query
    where, params = query.get_compiler(connection=connection).compile(query.where)
    table = connection.ops.quote_name(ServiceVariant._meta.db_table)
    sql = f"UPDATE {table} SET {_stock()} = {_stock()} - 1 WHERE ({where})"  # noqa: S608
    return _compiled(sql, params)


def _own_fields() -> list[Field[Any, Any]]:
    """The order's columns that its placing sets itself (not copied, not the stock left)."""
    skip = {*COPIED, STOCK_LEFT}
    return [f for f in RepairOrder._meta.concrete_fields if f.name not in skip]


@functools.cache
def _take_into(vendor: str) -> _Compiled:
    quote = connection.ops.quote_name
    variant, take = _copied(vendor), _take(vendor)
    copies = [_column(RepairOrder, name) for name in COPIED]
    own = [quote(str(f.column)) for f in _own_fields()]
    left = _column(RepairOrder, STOCK_LEFT)
    aliases = ["id", *(f"c{n}" for n in range(len(COPIED)))]
    pk = _column(ServiceVariant, "id")
    sql = (
        f"WITH variant ({', '.join(aliases)}) AS ({variant.sql}), "  # noqa: S608
        f"taken AS ({take.sql} AND {pk} IN (SELECT id FROM variant) RETURNING {_stock()}) "
        f"INSERT INTO {quote(RepairOrder._meta.db_table)} ({', '.join([*own, *copies, left])}) "
        f"SELECT {', '.join(['%s'] * len(own) + [f'variant.{a}' for a in aliases[1:]])}, "
        f"taken.{_stock()} FROM variant, taken RETURNING {', '.join([*copies, left])}"
    )
    return _compiled(sql, [*variant.params, *take.params])


class Availability(NamedTuple):
    stock: int
    lapsed: bool  # pending orders whose reservation lapsed still hold units of it


def availability(variant_id: uuid.UUID, now: datetime) -> Availability | None:
    """A bookable variant's stock and whether lapsed reservations hold some of it; None when the
    variant is not bookable (archived, of an archived service or of a vendor who does not sell)."""
    read = _availability(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(read.sql, read.bind(variant_id, now))
        row = cursor.fetchone()
    return None if row is None else Availability(int(row[0]), bool(row[1]))


def take_unit(variant_id: uuid.UUID) -> int | None:
    """Take one unit of a live variant in the caller's transaction: the stock left, or None when
    there is none. The row stays locked until that transaction ends, so whatever it writes next
    and the decrement commit or vanish together."""
    take = _take(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(f"{take.sql} RETURNING {_stock()}", take.bind(variant_id))
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def take_unit_into(order: RepairOrder, variant_id: uuid.UUID) -> bool:
    """PostgreSQL only: take one unit of a bookable variant and insert ``order`` (unsaved) in
    one statement, copying the variant's name, price and vendor into it and the stock left into
    ``stock_after_reservation``. False when no unit is free or the variant is not bookable, and
    then nothing is written. A unit is only taken for a variant the ``INSERT`` reads, so an
    unbookable one never loses a unit without its order."""
    statement = _take_into(connection.vendor)
    values = [f.get_db_prep_save(f.pre_save(order, True), connection) for f in _own_fields()]
    with connection.cursor() as cursor:
        cursor.execute(statement.sql, [*statement.bind(variant_id), *values])
        row = cursor.fetchone()
    if row is None:
        return False
    for name, value in zip([*COPIED, STOCK_LEFT], row, strict=True):
        setattr(order, field(RepairOrder, name).attname, value)
    return True


def _pay_when_pending_sql() -> str:
    quote = connection.ops.quote_name
    col = functools.partial(_column, RepairOrder)
    status, intent, session = col("status"), col("payment_intent_id"), col("checkout_session_id")
    returned = ", ".join(quote(str(f.column)) for f in RepairOrder._meta.concrete_fields)
    return (
        f"UPDATE {quote(RepairOrder._meta.db_table)} SET {status} = %s, "  # noqa: S608
        f"{col('paid_at')} = %s, {intent} = COALESCE({intent}, %s), "
        f"{session} = COALESCE({session}, %s), {col('updated_at')} = %s "
        f"WHERE {col('id')} = %s AND {status} = %s AND {col('total_amount')} = %s "
        f"AND {col('currency')} = %s AND ({intent} IS NULL OR {intent} = %s) "
        f"RETURNING {returned}"
    )


def pay_when_pending(
    *,
    order_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    paid_at: datetime,
    payment_intent_id: str | None,
    session_id: str | None,
) -> RepairOrder | None:
    """The pending order ``order_id`` of exactly ``amount`` in ``currency``, and with no other
    payment recorded on it, made paid by ``payment_intent_id`` (its checkout ``session_id``
    recorded unless one is): the row as it now is, or None when nothing matched."""
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
        cursor.execute(_pay_when_pending_sql(), params)
        row = cursor.fetchone()
    return None if row is None else _order_from(row)


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
