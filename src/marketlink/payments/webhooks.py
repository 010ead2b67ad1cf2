"""The webhook pipeline: receive (verify), keep (every delivery, committed before processing),
process once (concurrent duplicates included). What each kind of event does is in ``handlers``.

No function here holds a database transaction or a lock across a call to the payment provider:
provider calls happen first (or after commit, from tasks), and their results are written after.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.exceptions import (
    InvalidInput,
    MarketlinkError,
    ServiceUnavailable,
)
from marketlink.orders.models import ChangeSource
from marketlink.payments.gateways import gateway_named, get_gateway
from marketlink.payments.gateways.base import GatewayError, ProviderEvent
from marketlink.payments.handlers import HANDLERS
from marketlink.payments.models import EventStatus, PaymentEvent
from marketlink.payments.rules import PermanentProblem
from marketlink.payments.selectors import order_for_event

logger = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({EventStatus.PROCESSED, EventStatus.IGNORED})
PROCESSING_FIELDS = [
    "status",
    "result",
    "attempts",
    "last_error",
    "needs_attention",
    "processed_at",
    "order",
    "updated_at",
]

# --- The webhook pipeline ----------------------------------------------------------------------


def webhook_receive(*, payload: bytes, signature: str) -> PaymentEvent:
    """Verify, keep and process one delivery. Raises InvalidInput (400) for anything that is not
    a genuine event, ServiceUnavailable (503, so the provider retries) for transient failures."""
    gateway = get_gateway()
    if not signature:
        raise InvalidInput("The Stripe-Signature header is missing.")
    try:
        event = gateway.verify_event(payload, signature)
    except ValueError:  # genuinely signed, but not JSON (or not UTF-8)
        raise InvalidInput("The event body is not valid JSON.") from None
    parsed = gateway.parse_event(event)
    seen = _seen(parsed.event_id)
    if seen is not None and seen.status in FINAL_STATUSES:
        # A redelivery of a processed event: answered from one read, without a transaction or
        # the row's lock (processed is final; only an operator's forced replay reopens it).
        return seen
    storable = _without_nul(event) if b"\\u0000" in payload else event
    record_id = seen.pk if seen is not None else _event_record(parsed, storable, gateway.name)
    return event_process(record_id=record_id)


def _seen(event_id: str) -> PaymentEvent | None:
    """The stored delivery of ``event_id``, without its payload, if there is one."""
    found = PaymentEvent.objects.filter(event_id=event_id).order_by()
    return next(iter(found.only("id", "event_id", "status", "result")[:1]), None)


def _without_nul(value: Any) -> Any:
    """The event as it can be stored: PostgreSQL refuses NUL characters in JSON text, and a
    stored event must never turn into a 500 that the provider would retry forever."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def _event_record(event: ProviderEvent, payload: Any, gateway: str) -> uuid.UUID:
    """Keep the delivery, committed before it is processed, in one statement. Of concurrent
    copies one row is written; the others find it by its event id (``event_process`` then waits
    on its lock)."""
    row = PaymentEvent(
        event_id=event.event_id, event_type=event.provider_type, payload=payload, gateway=gateway
    )
    PaymentEvent.objects.bulk_create([row], ignore_conflicts=True)
    if PaymentEvent.objects.filter(pk=row.pk).exists():
        return row.pk
    return PaymentEvent.objects.order_by().values_list("pk", flat=True).get(event_id=event.event_id)


def event_process(
    *, record_id: Any, source: str = ChangeSource.WEBHOOK, force: bool = False
) -> PaymentEvent:
    """Process a stored event unless it already was. The event's row lock makes concurrent
    duplicates wait, then find it processed; a failed event is processed again. ``force``
    processes a processed event again (operators' replay: the handlers are idempotent)."""
    transient: MarketlinkError | None = None
    with transaction.atomic():
        record = PaymentEvent.objects.select_for_update().get(pk=record_id)
        if record.status in FINAL_STATUSES and not force:
            return record
        record.attempts += 1
        try:
            with transaction.atomic():
                record.status, record.result = _dispatch(record, source)
            record.last_error, record.needs_attention = "", False
            record.processed_at = timezone.now()
        except PermanentProblem as exc:
            record.status, record.last_error, record.needs_attention = (
                EventStatus.FAILED,
                str(exc),
                True,
            )
            logger.error("event %s needs attention: %s", record.event_id, exc)
        except (ServiceUnavailable, GatewayError) as exc:
            record.status, record.last_error = EventStatus.FAILED, f"transient: {exc.message}"
            transient = exc
        # Not the payload again: only what processing changed.
        record.save(update_fields=PROCESSING_FIELDS)
    if transient is not None:
        raise ServiceUnavailable(f"Could not process the event now: {transient.message}")
    return record


def _dispatch(record: PaymentEvent, source: str) -> tuple[str, str]:
    event = gateway_named(record.gateway).parse_event(record.payload)
    handler = HANDLERS.get(event.kind)
    if handler is None:
        return EventStatus.IGNORED, f"{record.event_type} is not handled"
    order = order_for_event(event)
    if order is None:
        raise PermanentProblem("no order matches this event")
    record.order = order
    return EventStatus.PROCESSED, handler(order, event, source)
