"""The Stripe gateway: Checkout Sessions through the official SDK (the only module importing it).

``STRIPE_API_BASE`` points the SDK at another server speaking Stripe's API; tests and demos use
``marketlink.testing.stripe_server`` there, so this code runs unmodified against a real HTTP peer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe

from marketlink import conf
from marketlink.exceptions import InvalidInput
from marketlink.payments.gateways.base import (
    AccountCheck,
    CheckoutRequest,
    CheckoutSession,
    EventKind,
    EventsOutOfReach,
    FetchedEvent,
    GatewayError,
    InvalidSignature,
    ProviderEvent,
    ProviderRefund,
    RefundRequest,
    transfer_group,
)
from marketlink.payments.gateways.stripe_connect import StripeConnect, read_account, read_transfer

logger = logging.getLogger(__name__)

# The API version every request asks for (the ``Stripe-Version`` header), whatever the SDK's own
# default or the account's: the version whose objects and events this module was written and
# tested against. stripe-python 16.1 pins it too; a newer SDK must not change what we read.
STRIPE_API_VERSION = "2026-10-28.endive"

# The metadata key naming the ``Refund`` row a refund request was made for.
REFERENCE_KEY = "marketlink_refund_id"

# How long Stripe's Events API keeps an event.
EVENT_RETENTION = timedelta(days=30)


class StripeGateway(StripeConnect):
    name = "stripe"

    def _client(self) -> stripe.StripeClient:
        config = conf.get()
        base: Any = {"api": config.STRIPE_API_BASE} if config.STRIPE_API_BASE else None
        return stripe.StripeClient(
            config.STRIPE_SECRET_KEY,
            stripe_version=STRIPE_API_VERSION,
            base_addresses=base,
            max_network_retries=2,
        )

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.amount_minor,
                        "product_data": {"name": request.description[:250]},
                    },
                    "quantity": 1,
                }
            ],
            "metadata": {"order_id": request.order_id},
            "payment_intent_data": {
                "metadata": {"order_id": request.order_id},
                # What the vendor's transfer names too (separate charges and transfers).
                "transfer_group": transfer_group(request.order_id),
            },
            "client_reference_id": request.order_id,
            "customer_email": request.customer_email,
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": int(request.expires_at.timestamp()),
        }
        session = self._call(
            "create a checkout session",
            lambda client: client.v1.checkout.sessions.create(
                params=params,
                options={"idempotency_key": request.idempotency_key},
            ),
        )
        return _session(session)

    def fetch_checkout(self, session_id: str) -> CheckoutSession:
        return _session(
            self._call(
                "fetch a checkout session",
                lambda client: client.v1.checkout.sessions.retrieve(session_id),
            )
        )

    def expire_checkout(self, session_id: str) -> None:
        try:
            self._call(
                "expire a checkout session",
                lambda client: client.v1.checkout.sessions.expire(session_id),
            )
        except GatewayError as exc:
            # Stripe refuses to expire a session that is no longer open (paid, or expired by
            # itself): there is nothing left to close, and retrying would not change that.
            if not isinstance(exc.__cause__, stripe.InvalidRequestError):
                raise
            logger.info(
                "checkout session %s was no longer open: %s",
                session_id,
                exc.__cause__,
                extra={"event": "checkout.already_closed", "session_id": session_id},
            )

    def refund(self, request: RefundRequest) -> ProviderRefund:
        params = {
            "payment_intent": request.payment_intent_id,
            "amount": request.amount_minor,
            "metadata": {REFERENCE_KEY: request.reference, "order_id": request.order_id},
        }
        refund = self._call(
            "refund a payment",
            lambda client: client.v1.refunds.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            ),
        )
        return _refund(refund.to_dict())

    def fetch_refunds(self, payment_intent_id: str) -> tuple[ProviderRefund, ...]:
        # Listed, every page of them: a charge's expanded ``refunds`` holds only its 10 newest,
        # and a payment refunded in more parts would look short of its total.
        what = "list a payment's refunds"
        params = {"payment_intent": payment_intent_id, "limit": 100}
        page = self._call(what, lambda client: client.v1.refunds.list(params=params))
        try:
            return tuple(_refund(refund.to_dict()) for refund in page.auto_paging_iter())
        except stripe.StripeError as exc:  # a later page's call
            raise _provider_failed(what, exc) from exc

    def parse_event(self, event: dict[str, Any]) -> ProviderEvent:
        return parse_event(event)

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        config = conf.get()
        secrets = [config.STRIPE_WEBHOOK_SECRET, config.STRIPE_WEBHOOK_SECRET_PREVIOUS]
        return _verified(payload, signature, secrets, "STRIPE_WEBHOOK_SECRET")

    def verify_connect_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        secret = conf.get().STRIPE_CONNECT_WEBHOOK_SECRET
        return _verified(payload, signature, [secret], "STRIPE_CONNECT_WEBHOOK_SECRET")

    def list_events(
        self,
        *,
        since: datetime,
        kinds: Collection[EventKind] | None = None,
        undelivered_only: bool = False,
    ) -> Iterator[FetchedEvent]:
        oldest = datetime.now(UTC) - EVENT_RETENTION
        if since < oldest:
            raise EventsOutOfReach(
                f"Stripe keeps events for {EVENT_RETENTION.days} days: the earliest that can be "
                f"fetched is {oldest:%Y-%m-%d %H:%M} UTC, "
                f"not {since.astimezone(UTC):%Y-%m-%d %H:%M}."
            )
        params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}, "limit": 100}
        # Stripe filters by its own type names; "other" kinds have none, so they are sorted out
        # here, after listing every type.
        if kinds is not None and EventKind.OTHER not in kinds:
            params["types"] = sorted(t for t, kind in _KINDS.items() if kind in kinds)
        if undelivered_only:
            params["delivery_success"] = False
        # Asked now, so a refusal or an unreachable provider is raised by this call, not at the
        # first item.
        page = self._call("list events", lambda client: client.v1.events.list(params=params))
        return self._fetched(page, kinds)

    def _fetched(self, page: Any, kinds: Collection[EventKind] | None) -> Iterator[FetchedEvent]:
        try:
            for event in page.auto_paging_iter():
                payload = event.to_dict()
                parsed = parse_event(payload)
                if kinds is None or parsed.kind in kinds:
                    yield FetchedEvent(event_id=parsed.event_id, parsed=parsed, payload=payload)
        except stripe.StripeError as exc:
            raise _provider_failed("list events", exc) from exc

    def kind_of(self, provider_type: str) -> EventKind:
        return kind_of(provider_type)

    def check_credentials(self) -> AccountCheck:
        try:
            balance = self._client().v1.balance.retrieve()
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            # Stripe's message quotes part of the key: say only what an operator can act on.
            return AccountCheck(
                ok=False,
                livemode=None,
                detail=f"Stripe refused STRIPE_SECRET_KEY (HTTP {exc.http_status}): set a valid "
                "secret key of the Stripe account.",
            )
        except stripe.StripeError as exc:
            raise _provider_failed("check the API key", exc) from exc
        livemode = bool(balance.livemode)
        mode = "live" if livemode else "test"
        return AccountCheck(ok=True, livemode=livemode, detail=f"Stripe accepts the {mode} key.")

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call(self._client())
        except stripe.StripeError as exc:
            raise _provider_failed(what, exc) from exc


def _verified(payload: bytes, signature: str, secrets: list[str], setting: str) -> dict[str, Any]:
    """The event in ``payload`` if one of ``secrets`` (a rotation's two, or one) signed it."""
    if not secrets[0].strip():
        # Checked here, not only by a system check (which gunicorn never runs): some SDK
        # releases verify with the empty key, and then anyone could sign an event.
        logger.error(
            "%s is empty: refusing every webhook delivery",
            setting,
            extra={"event": "webhook.secret_missing"},
        )
        raise InvalidSignature(
            f"Invalid Stripe signature: {setting} is not configured on this site."
        )
    if not signature.isascii():  # the SDK's compare_digest raises TypeError on it
        raise InvalidSignature("Invalid Stripe signature: the header is not ASCII.")
    try:
        # Stripe signs the body's text; SDK releases before 15.6 format bytes as "b'...'".
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("The event body is not UTF-8 text.") from None
    tolerance = conf.get().STRIPE_WEBHOOK_TOLERANCE
    refusal: stripe.SignatureVerificationError | None = None
    for secret in filter(str.strip, secrets):
        try:
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=tolerance)
        except stripe.SignatureVerificationError as exc:
            refusal = refusal or exc
        else:
            return json.loads(text)  # type: ignore[no-any-return]
    assert refusal is not None
    raise InvalidSignature(f"Invalid Stripe signature: {refusal.user_message or refusal}")


def _provider_failed(what: str, exc: stripe.StripeError) -> GatewayError:
    """The failure in marketlink's terms. Stripe saves a definite answer (400, 402, 404 or 500)
    under the idempotency key; a network error, a 503 or a refused key leaves nothing saved."""
    logger.warning(
        "Stripe failed to %s: %s",
        what,
        exc,
        extra={
            "event": "provider.call_failed",
            "call": what,
            "http_status": exc.http_status,
            "request_id": exc.request_id,
        },
    )
    # A definite answer: Stripe refused what it was asked (400, 402, 404), or failed executing
    # it (500); asking again the same way gets the same. No answer: the key or its rights
    # refused (401, 403), the same key still in flight (409), a rate limit (429), a 5xx but
    # 500, or the network: nothing was decided, and asking again may pass.
    status = exc.http_status
    answered = status in (400, 402, 404, 500)
    reason = exc.code or None
    if answered and status != 500:
        why = exc.user_message or exc.code or f"HTTP {status}"
        return GatewayError(
            f"The payment provider refused to {what}: {why}", answered=True, reason=reason
        )
    return GatewayError(
        f"The payment provider failed to {what}; try again shortly.",
        answered=answered,
        no_access=status in (401, 403),
        reason=reason,
    )


def _session(session: Any) -> CheckoutSession:
    intent = session.payment_intent
    return CheckoutSession(
        id=session.id,
        url=session.url or "",
        status=session.status,
        payment_status=session.payment_status,
        payment_intent_id=intent if isinstance(intent, str) or intent is None else intent.id,
        amount_minor=session.amount_total,
        currency=session.currency,
    )


# --- Stripe's events, in marketlink's terms -----------------------------------------------------

_KINDS = {
    "checkout.session.completed": EventKind.CHECKOUT_COMPLETED,
    "checkout.session.async_payment_succeeded": EventKind.ASYNC_PAYMENT_SUCCEEDED,
    "checkout.session.async_payment_failed": EventKind.ASYNC_PAYMENT_FAILED,
    "checkout.session.expired": EventKind.CHECKOUT_EXPIRED,
    "payment_intent.succeeded": EventKind.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": EventKind.PAYMENT_FAILED,
    "charge.refunded": EventKind.CHARGE_REFUNDED,
    # Stripe's older endpoints send charge.refund.updated, newer ones refund.updated: both.
    "refund.created": EventKind.REFUND,
    "refund.updated": EventKind.REFUND,
    "refund.failed": EventKind.REFUND,
    "charge.refund.updated": EventKind.REFUND,
    "charge.dispute.created": EventKind.DISPUTE,
    "charge.dispute.closed": EventKind.DISPUTE,
    "account.updated": EventKind.ACCOUNT_UPDATED,
    "capability.updated": EventKind.CAPABILITY_UPDATED,
    "account.application.deauthorized": EventKind.ACCOUNT_DEAUTHORIZED,
    "transfer.created": EventKind.TRANSFER_CREATED,
    "transfer.reversed": EventKind.TRANSFER_REVERSED,
}
# Where each kind of object keeps the amount a handler checks.
_AMOUNT_FIELDS = {
    "checkout.session": ("amount_total",),
    "payment_intent": ("amount_received", "amount"),
    "charge": ("amount_refunded",),
    "refund": ("amount",),
    "dispute": ("amount",),
}


def kind_of(provider_type: str) -> EventKind:
    return _KINDS.get(provider_type, EventKind.OTHER)


def parse_event(event: dict[str, Any]) -> ProviderEvent:
    """A Stripe event (as delivered, or fetched from the Events API) in marketlink's terms."""
    try:
        event_id, event_type, obj = event["id"], event["type"], event["data"]["object"]
    except (KeyError, TypeError):
        raise InvalidInput("The event has no id, type or data.object.") from None
    if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)):
        raise InvalidInput("The event's id, type or data.object has the wrong type.")
    if not 0 < len(event_id) <= 255 or len(event_type) > 100:
        raise InvalidInput("The event's id or type is too long.")
    kind = kind_of(event_type)
    object_type = obj.get("object")
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    amount = next((obj[f] for f in _AMOUNT_FIELDS.get(str(object_type), ()) if f in obj), None)
    intent = obj.get("id") if object_type == "payment_intent" else obj.get("payment_intent")
    return ProviderEvent(
        kind=kind,
        event_id=event_id,
        provider_type=event_type,
        order_ref=_text(metadata.get("order_id") or obj.get("client_reference_id")),
        session_id=_text(obj.get("id")) if object_type == "checkout.session" else None,
        payment_intent_id=_text(intent),
        amount_minor=amount if isinstance(amount, int) else None,
        currency=_text(obj.get("currency")),
        paid=kind == EventKind.PAYMENT_SUCCEEDED or obj.get("payment_status") == "paid",
        refunds=(_refund(obj),) if object_type == "refund" else (),
        dispute_id=_text(obj.get("id")) if object_type == "dispute" else None,
        dispute_status=_text(obj.get("status")) if object_type == "dispute" else None,
        dispute_reason=_text(obj.get("reason")) if object_type == "dispute" else None,
        livemode=livemode if isinstance(livemode := event.get("livemode"), bool) else None,
        # A connected account's event names it; a capability's object does too.
        account=_text(event.get("account")) or _text(obj.get("account")),
        connected_account=read_account(obj) if object_type == "account" else None,
        transfer=read_transfer(obj) if object_type == "transfer" else None,
    )


def _refund(obj: dict[str, Any]) -> ProviderRefund:
    amount = obj.get("amount")
    metadata = obj.get("metadata")
    return ProviderRefund(
        id=_text(obj.get("id")),
        status=_text(obj.get("status")) or "",
        amount_minor=amount if isinstance(amount, int) else None,
        currency=_text(obj.get("currency")),
        reference=_text(metadata.get(REFERENCE_KEY)) if isinstance(metadata, dict) else None,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
