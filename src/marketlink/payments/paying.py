"""The paying delivery's fast path: the first news that a pending order was paid, in one short
transaction. With the read that found the event new (``webhooks``), four statements on
PostgreSQL, the order lookup included:

1. the read of the event's id (a redelivery is answered from it: nothing more);
2. the event's row, kept as processed unless its id is kept already, and in the same statement
   (a ``WITH``) the order's conditional ``UPDATE``, made only if the row was written: found by
   the id marketlink gave the provider, still pending, of exactly the amount and currency
   paid, with no other payment recorded (``orders.transitions.order_pay_when_pending``);
3. its history row;
4. the outbox entry owing its invoice (written by payments' own hook on the change).

The event's row comes first so that no transaction holding the order waits for another's
event row (``orders.sql.Claim`` says why that would deadlock). On SQLite it is a statement of
its own. The other news of that same payment (Stripe sends two events for every payment: the
session's and the intent's) finds the order paid by it: one more statement says so in the
event's result, if the order was paid by that payment.

Anything else (an order no longer pending and not paid by this payment; money that does not
match; no order id in the event; the same event kept meanwhile by another delivery) writes
nothing here and takes the general path, which decides it and says why: the fast path only
decides what the general one would, for the cases that run hottest, without its reads.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from marketlink.money import from_minor_units
from marketlink.orders.models import ChangeSource
from marketlink.orders.selectors import PAID_STATUSES
from marketlink.orders.sql import Claim
from marketlink.orders.transitions import order_pay_when_pending
from marketlink.payments.gateways.base import EventKind, ProviderEvent
from marketlink.payments.models import EventStatus, PaymentEvent

PAYING = frozenset({EventKind.PAYMENT_SUCCEEDED, EventKind.ASYNC_PAYMENT_SUCCEEDED})
NOTE = "payment confirmed"
ALREADY_PAID = "already paid"


class _NotAtOnce(Exception):
    """The general path decides this event (nothing was written)."""


def pay_at_once(event: ProviderEvent, payload: object, gateway: str) -> PaymentEvent | None:
    """The kept event if ``event`` paid a pending order here; None (nothing written) when the
    general path must decide it."""
    order_id = _order_id(event)
    paying = event.kind in PAYING or (event.kind == EventKind.CHECKOUT_COMPLETED and event.paid)
    if order_id is None or not paying or event.amount_minor is None or not event.currency:
        return None
    record = PaymentEvent(
        event_id=event.event_id,
        gateway=gateway,
        event_type=event.provider_type,
        order_id=order_id,
        payload=payload,
        status=EventStatus.PROCESSED,
        attempts=1,
        result=NOTE,
        processed_at=timezone.now(),
    )
    try:
        with transaction.atomic():
            paid, kept = order_pay_when_pending(
                order_id=order_id,
                amount=from_minor_units(event.amount_minor, event.currency),
                currency=event.currency.lower(),
                payment_intent_id=event.payment_intent_id,
                session_id=event.session_id,
                source=ChangeSource.WEBHOOK,
                note=NOTE,
                claim=Claim(_insert_sql(connection.vendor), _values(record)),
            )
            if not kept:
                raise _NotAtOnce  # kept meanwhile by another delivery of it
            if paid is None:
                _already_paid_by(event.payment_intent_id, record)
    except (_NotAtOnce, IntegrityError, ValueError):
        # IntegrityError: a checkout id another order holds; ValueError: a currency marketlink
        # cannot read. The general path flags either. Nothing written is kept.
        return None
    return record


def _already_paid_by(intent: str | None, record: PaymentEvent) -> None:
    """The event's row, just written, says "already paid" if its order was paid by this very
    payment. Anything else is the general path's to decide (:class:`_NotAtOnce`: the row is
    rolled back)."""
    news_of_the_payment = PaymentEvent.objects.filter(
        pk=record.pk, order__status__in=PAID_STATUSES, order__payment_intent_id=intent
    )
    if intent is None or not news_of_the_payment.update(result=ALREADY_PAID):
        raise _NotAtOnce
    record.result = ALREADY_PAID


def _order_id(event: ProviderEvent) -> uuid.UUID | None:
    try:
        return uuid.UUID(event.order_ref) if event.order_ref else None
    except ValueError:
        return None


def _values(record: PaymentEvent) -> list[Any]:
    fields = PaymentEvent._meta.concrete_fields
    return [f.get_db_prep_save(f.pre_save(record, True), connection) for f in fields]


# ``vendor`` is the cache's key: the quoting differs from one database to another.
@functools.cache
def _insert_sql(vendor: str) -> str:
    """``INSERT`` of an event's row unless its id is kept, ``RETURNING 1`` if it was written."""
    quote = connection.ops.quote_name
    fields = PaymentEvent._meta.concrete_fields
    columns = ", ".join(quote(str(f.column)) for f in fields)
    values = ", ".join(["%s"] * len(fields))
    event_id = quote(str(PaymentEvent._meta.get_field("event_id").column))
    return (
        f"INSERT INTO {quote(PaymentEvent._meta.db_table)} ({columns}) VALUES ({values}) "  # noqa: S608
        f"ON CONFLICT ({event_id}) DO NOTHING RETURNING 1"
    )
