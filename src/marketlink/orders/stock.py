"""Stock: where reservations (orders) meet units (the catalogue's variants).

Everything that moves or counts a unit lives here: a booking's unit taken with its order written
(:func:`reserve`, lapsed reservations released on the way when no unit is free), a unit given
back, the lapsed reservations that still hold one, and the availability a customer is shown.
Two layers keep it correct, as in the seed:

1. **A per-variant Redis lock** (:func:`variant_lock`, over ``marketlink.locking``) serialises
   the bookings of one variant across processes, held only around the database work, never
   across a call to a payment provider.
2. **The database** is the source of truth: a unit is taken with a conditional
   ``UPDATE … SET stock = stock - 1 WHERE stock >= 1`` in the statement (PostgreSQL) or the
   transaction that writes the order, and ``stock >= 0`` is a CHECK constraint. This alone is
   correct; the lock only makes it cheaper under contention.

The booking path's statements are compiled once and run as SQL (``orders.sql``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from marketlink import audit, locking
from marketlink.catalog.models import ServiceVariant
from marketlink.exceptions import Conflict, NotFound
from marketlink.orders import history, sql
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.sql import take_unit as take_unit  # also order_transition's retake

# A booking releases at most this many lapsed reservations at once (the oldest first); the
# expiry job tidies the rest.
RELEASE_BATCH = 100


class SoldOut(Conflict):
    """No unit is free and no lapsed reservation holds one (409)."""

    default_message = "This variant is out of stock."


@contextmanager
def variant_lock(
    variant_id: uuid.UUID, *, if_busy: Callable[[], object] | None = None
) -> Iterator[None]:
    """Hold the variant's lock for the block (see ``marketlink.locking.lock``, and its
    ``if_busy``: called before waiting on another holder)."""
    with locking.lock(f"variant:{variant_id}", {"variant_id": variant_id}, if_busy=if_busy):
        yield


def reserve(
    order: RepairOrder, variant_id: uuid.UUID, *, savepoint: bool = True
) -> list[RepairOrder]:
    """Take a unit of the variant for ``order`` (unsaved) and insert it, with what it copies of
    the variant (name, price, vendor); when no unit is free, release the variant's lapsed
    reservations first. Returns the orders released that way (cancelled, history written,
    units back): sending their ``order_cancelled`` is the caller's. Raises :class:`NotFound`
    when the variant is not bookable, :class:`SoldOut` when it has no unit to give.

    Uncontended, a booking is one statement under the lock, which reads the variant too. A
    booking that finds the lock busy (a rush) reads the variant first (:func:`read_variant`)
    and does not wait for a unit that is not there, so a rush's refusals never queue behind its
    bookings, and the bookings that do wait then write without the read. ``savepoint=False``:
    the caller gives its whole transaction up on a duplicate ``Idempotency-Key``
    (``IntegrityError``), so none is set around the write.
    """
    with variant_lock(variant_id, if_busy=lambda: read_variant(order, variant_id)):
        if _take_into(order, variant_id, savepoint=savepoint):
            return []
        # Nothing written: not bookable, sold out, or units held by lapsed reservations.
        stock = read_variant(order, variant_id)
        with transaction.atomic(savepoint=savepoint):
            released = _release_lapsed(variant_id) if stock < 1 else []
            if not _take_into(order, variant_id, savepoint=False):
                raise SoldOut()
        return released


def read_variant(order: RepairOrder, variant_id: uuid.UUID) -> int:
    """Copy into ``order`` what it takes of the variant and answer the variant's stock, if a
    booking of it may succeed now: :class:`NotFound` when it is not bookable, :class:`SoldOut`
    when it has no unit and no lapsed reservation holds one."""
    stock = sql.read_into(order, variant_id)
    if stock is None:
        raise NotFound("No such variant.")
    if stock < 1 and not sql.lapsed_any(variant_id, timezone.now()):
        raise SoldOut()
    return stock


def _take_into(order: RepairOrder, variant_id: uuid.UUID, *, savepoint: bool) -> bool:
    """Take one unit and insert ``order``: False (nothing written) when no unit is free or the
    variant is not bookable. One statement on PostgreSQL (``sql.take_unit_into``), committing
    by itself at the top level, so the variant's row is locked for the shortest time; elsewhere
    a transaction of the read (unless the order holds its copy), the conditional ``UPDATE`` and
    the ``INSERT``."""
    if connection.vendor != "postgresql":
        with transaction.atomic(savepoint=savepoint):
            return _take_and_save(order, variant_id)
    # Inside a caller's transaction, a savepoint keeps it usable after a duplicate key.
    inside = connection.in_atomic_block and savepoint
    with transaction.atomic() if inside else nullcontext():
        if not sql.take_unit_into(order, variant_id):
            return False
    order._state.adding = False
    order._state.db = connection.alias
    return True


def _take_and_save(order: RepairOrder, variant_id: uuid.UUID) -> bool:
    if not sql.has_copy(order) and not sql.read_into(order, variant_id):
        return False  # not bookable, or no unit: nothing to try
    left = take_unit(variant_id)
    if left is None:
        return False
    setattr(order, sql.STOCK_LEFT, left)
    order.save(force_insert=True)
    return True


def _release_lapsed(variant_id: uuid.UUID) -> list[RepairOrder]:
    """Cancel the variant's lapsed reservations and put their units back, in the caller's
    transaction: a booking never waits on a late expiry job for a unit that is really free.
    Set-based (the rows locked, one ``UPDATE``, one history ``INSERT``, one stock ``UPDATE``)
    instead of one transition each; a payment or the expiry job that reaches a row first wins it,
    as with ``order_transition``'s conditional update. Whatever else a release owes in its own
    transaction (what ``order_transition`` writes beside the history) is owed here too."""
    now = timezone.now()
    orders = _lapsed(now, variant_id).select_for_update().order_by("expires_at")
    released = list(orders[:RELEASE_BATCH])
    if not released:
        return []
    RepairOrder.objects.filter(pk__in=[order.pk for order in released]).update(
        status=OrderStatus.CANCELLED, updated_at=now
    )
    for order in released:
        order.status, order.updated_at = OrderStatus.CANCELLED, now
    # The customer booking is not the person who cancels these (they are others' orders).
    with audit.acting():
        history.changes_record(
            released,
            from_status=OrderStatus.PENDING,
            to_status=OrderStatus.CANCELLED,
            source=ChangeSource.API,
            note="reservation expired (reclaimed at booking)",
        )
    return_unit(variant_id, units=len(released))
    return released


def return_unit(variant_id: uuid.UUID, *, units: int = 1) -> None:
    """Give units back (orders released their reservations), in the caller's transaction."""
    ServiceVariant.objects.filter(pk=variant_id).update(stock=F("stock") + units)


def _lapsed(now: datetime, variant_id: uuid.UUID | None = None) -> QuerySet[RepairOrder]:
    orders = RepairOrder.objects.filter(status=OrderStatus.PENDING, expires_at__lte=now)
    return orders if variant_id is None else orders.filter(variant_id=variant_id)


def expired_pending_ids(
    *, variant_id: uuid.UUID | None = None, limit: int = 100
) -> list[uuid.UUID]:
    """Pending orders whose reservation lapsed: they still hold a unit until they are released."""
    orders = _lapsed(timezone.now(), variant_id).order_by("expires_at")
    return list(orders.values_list("id", flat=True)[:limit])


def available_stock(variant: ServiceVariant) -> int:
    """Units a customer can book now: the stock plus reservations that lapsed but that the expiry
    job has not released yet (booking reclaims them on the spot)."""
    return variant.stock + len(expired_pending_ids(variant_id=variant.id, limit=10_000))
