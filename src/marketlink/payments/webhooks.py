"""The webhook pipeline: receive (verify), keep (every delivery, committed before processing),
process once (concurrent duplicates included). What each kind of event does is in ``handlers``.

No function here holds a database transaction or a lock across a call to the payment provider:
provider calls happen first (or after commit, from tasks), and their results are written after.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink import conf, metrics
from marketlink.exceptions import (
    InvalidInput,
    MarketlinkError,
    ServiceUnavailable,
)
from marketlink.orders.models import ChangeSource
from marketlink.payments import event_hooks
from marketlink.payments.gateways import gateway_named, get_gateway
from marketlink.payments.gateways.base import (
    GatewayError,
    InvalidSignature,
    PaymentGateway,
    ProviderEvent,
)
from marketlink.payments.handlers import HANDLERS, PROVIDER_READS
from marketlink.payments.models import RESULT_LENGTH, EventStatus, PaymentEvent
from marketlink.payments.paying import pay_at_once
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


def webhook_receive(*, payload: bytes, signature: str, connect: bool = False) -> PaymentEvent:
    """Verify, keep and process one delivery. Raises InvalidInput (400) for anything that is not
    a genuine event, ServiceUnavailable (503, so the provider retries) for transient failures.
    ``connect``: a delivery to the Connect endpoint (connected accounts' events), signed with
    its own secret; it then takes the same pipeline."""
    gateway = get_gateway()
    try:
        if not signature:
            raise InvalidSignature("The Stripe-Signature header is missing.")
        verify = gateway.verify_connect_event if connect else gateway.verify_event
        event = verify(payload, signature)
    except InvalidSignature as exc:
        # The reason only: never the header, the body or the secret it was checked against.
        logger.warning(
            "webhook refused: %s",
            exc.message,
            extra={"event": "webhook.signature_invalid", "gateway": gateway.name},
        )
        metrics.webhook_answered("invalid_signature")
        raise
    except ValueError:  # genuinely signed, but not JSON (or not UTF-8)
        raise InvalidInput("The event body is not valid JSON.") from None
    # Read as it will be stored: PostgreSQL refuses NUL characters in text and JSON alike.
    storable = _without_nul(event) if b"\\u0000" in payload else event
    return _accept(storable, gateway)


def fetched_event_accept(event: Any) -> PaymentEvent:
    """Keep and process an event fetched from the provider's events API (an operator's replay
    of deliveries that never reached us), exactly as its delivery would have been. It enters the
    pipeline after the signature step: it came over the authenticated API, unsigned."""
    return _accept(_without_nul(event), get_gateway())


def _accept(storable: Any, gateway: PaymentGateway) -> PaymentEvent:
    parsed = gateway.parse_event(storable)
    seen = _seen(parsed.event_id)
    if seen is None and _of_the_other_mode(parsed) is None:
        paid = pay_at_once(parsed, storable, gateway.name)
        if paid is not None:
            _log_received(parsed)
            kept = (paid.event_id, paid.event_type, paid.order_id, paid.result)
            _report(logging.INFO, "processed", *kept)
            return paid
        seen = _seen(parsed.event_id)  # the general path's: kept meanwhile, or not
    if seen is not None and seen.status in FINAL_STATUSES:
        # A redelivery of a processed event: answered from one read, without a transaction or
        # the row's lock (processed is final; only an operator's forced replay reopens it).
        _report(logging.INFO, "duplicate", parsed.event_id, parsed.provider_type, seen.order_id)
        return seen
    _log_received(parsed)
    if seen is None:
        _event_record(parsed, storable, gateway.name)
    return event_process(event_id=parsed.event_id, parsed=parsed)


def _log_received(parsed: ProviderEvent) -> None:
    logger.info(
        "event %s (%s) received",
        parsed.event_id,
        parsed.provider_type,
        extra={
            "event": "payment_event.received",
            "event_id": parsed.event_id,
            "event_type": parsed.provider_type,
        },
    )


def _report(
    level: int, outcome: str, event_id: str, event_type: str, order_id: Any, detail: str = ""
) -> None:
    """One log line and one count per outcome of a delivery (the names are documented)."""
    metrics.webhook_answered(outcome)
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "event %s (%s): %s%s",
            event_id,
            event_type,
            outcome,
            f": {detail}" if detail else "",
            extra={
                "event": f"payment_event.{outcome}",
                "event_id": event_id,
                "event_type": event_type,
                "order_id": order_id,
                "detail": detail,
            },
        )


def _seen(event_id: str) -> PaymentEvent | None:
    """The stored delivery of ``event_id``, without its payload, if there is one."""
    found = PaymentEvent.objects.filter(event_id=event_id).order_by()
    return next(iter(found.only("id", "event_id", "status", "result", "order_id")[:1]), None)


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


def _event_record(event: ProviderEvent, payload: Any, gateway: str) -> None:
    """Keep the delivery, committed before it is processed, in one statement. Of concurrent
    copies one row is written (``event_process`` then makes the others wait on its lock)."""
    row = PaymentEvent(
        event_id=event.event_id,
        event_type=event.provider_type,
        payload=payload,
        gateway=gateway,
        account=(event.account or "")[:255],
    )
    PaymentEvent.objects.bulk_create([row], ignore_conflicts=True)


def event_process(
    *,
    record_id: Any = None,
    event_id: str | None = None,
    parsed: ProviderEvent | None = None,
    source: str = ChangeSource.WEBHOOK,
    force: bool = False,
) -> PaymentEvent:
    """Process a stored event (by its row's id, or its provider's event id) unless it already
    was. The event's row lock makes concurrent duplicates wait, then find it processed; a failed
    event is processed again. ``force`` processes a processed event again (operators' replay:
    the handlers are idempotent). ``parsed``: the event as the gateway just read it, so the
    stored payload is not loaded and read again."""
    transient: MarketlinkError | None = None
    lookup = {"pk": record_id} if record_id is not None else {"event_id": event_id}
    try:
        parsed = _with_provider_reads(lookup, parsed)
    except GatewayError as exc:
        # The provider could not say what the event needs: nothing was processed; the event
        # stays failed (transient) and is answered 503, so it is delivered again.
        transient = exc
    with transaction.atomic():
        locked = PaymentEvent.objects.select_for_update().order_by()
        record = (locked.defer("payload") if parsed else locked).get(**lookup)
        if record.status in FINAL_STATUSES and not force:
            _report(logging.INFO, "duplicate", record.event_id, record.event_type, record.order_id)
            return record
        record.attempts += 1
        try:
            if transient is not None:
                raise transient
            with transaction.atomic():
                record.status, result = _dispatch(record, source, parsed)
            # Cut to its column: a note per refund of a payment refunded in many parts would
            # not fit, and PostgreSQL would refuse the row (the event then never processed).
            record.result = result[:RESULT_LENGTH]
            record.last_error, record.needs_attention = "", False
            record.processed_at = timezone.now()
        except PermanentProblem as exc:
            record.status, record.last_error, record.needs_attention = (
                EventStatus.FAILED,
                str(exc),
                True,
            )
        except (ServiceUnavailable, GatewayError) as exc:
            record.status, record.last_error = EventStatus.FAILED, f"transient: {exc.message}"
            transient = exc
        # Not the payload again: only what processing changed.
        record.save(update_fields=PROCESSING_FIELDS)
    _report_processed(record, transient)
    if transient is not None:
        raise ServiceUnavailable(f"Could not process the event now: {transient.message}")
    return record


def _report_processed(record: PaymentEvent, transient: MarketlinkError | None) -> None:
    if transient is not None:
        outcome, level = "transient", logging.WARNING
    elif record.status == EventStatus.FAILED:
        outcome, level = "failed", logging.ERROR  # flagged for staff (needs_attention)
    else:
        outcome, level = str(record.status), logging.INFO  # processed or ignored
    detail = record.last_error if outcome != "processed" else record.result
    _report(level, outcome, record.event_id, record.event_type, record.order_id, detail)


def _with_provider_reads(
    lookup: dict[str, Any], parsed: ProviderEvent | None
) -> ProviderEvent | None:
    """The event with what the provider must be asked about it first (a refunded charge's
    refunds), asked outside any transaction; ``parsed`` as it is for every other kind."""
    if parsed is None:
        stored = PaymentEvent.objects.filter(**lookup).values("gateway", "event_type").first()
        if stored is None:
            return None
        gateway = gateway_named(stored["gateway"])
        kind = gateway.kind_of(stored["event_type"])
        if kind not in PROVIDER_READS and event_hooks.read_of(kind) is None:
            return None
        payload = PaymentEvent.objects.values_list("payload", flat=True).get(**lookup)
        parsed = gateway.parse_event(payload)
    read = PROVIDER_READS.get(parsed.kind) or event_hooks.read_of(parsed.kind)
    return parsed if read is None else read(parsed)


def _dispatch(record: PaymentEvent, source: str, parsed: ProviderEvent | None) -> tuple[str, str]:
    event = parsed or gateway_named(record.gateway).parse_event(record.payload)
    other_mode = _of_the_other_mode(event)
    if other_mode is not None:
        return EventStatus.IGNORED, other_mode
    handler = HANDLERS.get(event.kind)
    own = event_hooks.handler_of(event.kind)
    if own is not None:
        # An event no order owns (a connected account's), handled by the app that registered it.
        record.order = order_for_event(event) if event.order_ref else None
        return EventStatus.PROCESSED, own(event, source)
    if handler is None:
        return EventStatus.IGNORED, f"{record.event_type} is not handled"
    order = order_for_event(event)
    if order is None:
        raise PermanentProblem("no order matches this event")
    record.order = order
    said = [handler(order, event, source)]
    said += [step(order, event, source) for step in event_hooks.steps_of(event.kind)]
    return EventStatus.PROCESSED, "; ".join(part for part in said if part)


def _of_the_other_mode(event: ProviderEvent) -> str | None:
    """Why an event is ignored when its mode contradicts ``STRIPE_MODE`` (an endpoint of the
    other mode pointed at this site): its payments are not this site's money. None when the
    site or the event does not say its mode."""
    config = conf.get()
    declared = config.STRIPE_MODE
    if declared is None and event.account and config.PAYMENT_GATEWAY == "stripe":
        # A live Connect endpoint also receives the test-mode events of accounts connected in
        # live mode: without a declared mode, the key's is the site's.
        live = config.STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
        declared = "live" if live else "test"
    if declared is None or event.livemode is None or event.livemode == (declared == "live"):
        return None
    return (
        f"a {'live' if event.livemode else 'test'}-mode event on a site whose STRIPE_MODE is "
        f"{declared!r}"
    )
