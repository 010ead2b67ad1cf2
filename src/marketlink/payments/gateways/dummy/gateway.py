"""The dummy gateway: the embedded default, and for sites without Stripe.

It hosts its own small checkout page (Pay / Decline). The outcome travels as a Stripe-shaped
event signed with Stripe's scheme (key derived from ``SECRET_KEY``) through the very same webhook
pipeline as Stripe's events: verification, storage, idempotency, order transitions, invoice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from marketlink.payments.gateways import signatures
from marketlink.payments.gateways import stripe as stripe_events
from marketlink.payments.gateways.base import (
    AccountCheck,
    CheckoutRequest,
    CheckoutSession,
    EventKind,
    FetchedEvent,
    GatewayError,
    ProviderEvent,
    ProviderRefund,
    RefundRequest,
)
from marketlink.payments.gateways.dummy.connect import DummyConnect
from marketlink.payments.models import DummyCheckoutSession, DummyEvent


def webhook_secret() -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), b"marketlink.dummy-gateway.webhooks", hashlib.sha256
    ).hexdigest()


class DummyGateway(DummyConnect):
    name = "dummy"

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession:
        existing = DummyCheckoutSession.objects.filter(
            idempotency_key=request.idempotency_key
        ).first()
        if existing is None:
            try:
                with transaction.atomic():
                    existing = DummyCheckoutSession.objects.create(
                        id=f"cs_dummy_{secrets.token_hex(12)}",
                        order_id=request.order_id,
                        amount_minor=request.amount_minor,
                        currency=request.currency,
                        description=request.description[:300],
                        success_url=request.success_url,
                        cancel_url=request.cancel_url,
                        expires_at=request.expires_at,
                        idempotency_key=request.idempotency_key,
                    )
            except IntegrityError:
                existing = DummyCheckoutSession.objects.get(idempotency_key=request.idempotency_key)
        return _session(existing)

    def fetch_checkout(self, session_id: str) -> CheckoutSession:
        session = DummyCheckoutSession.objects.filter(pk=session_id).first()
        if session is None:
            raise GatewayError(f"No dummy checkout session {session_id}.")
        return _session(session)

    def expire_checkout(self, session_id: str) -> None:
        DummyCheckoutSession.objects.filter(pk=session_id, status="open").update(status="expired")

    def refund(self, request: RefundRequest) -> ProviderRefund:
        """The dummy's refunds succeed at once (its money is imaginary), under an id derived from
        the idempotency key, so a retry gets the same refund, as Stripe's idempotency gives."""
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:24]
        return ProviderRefund(
            id=f"re_dummy_{digest}",
            status="succeeded",
            amount_minor=request.amount_minor,
            reference=request.reference,
        )

    def fetch_refunds(self, payment_intent_id: str) -> tuple[ProviderRefund, ...]:
        """None the site does not know of: the dummy has no dashboard, so every refund of its
        payments was asked for by marketlink, which recorded it when it asked."""
        return ()

    def parse_event(self, event: dict[str, Any]) -> ProviderEvent:
        """The dummy's events travel in Stripe's event format on purpose (a demo site's events
        look like production's, and the tests' event builders serve both gateways), so Stripe's
        own parser reads them. Without a mode: Stripe's modes (``STRIPE_MODE``) are not the
        dummy's, whose money is never real."""
        return dataclasses.replace(stripe_events.parse_event(event), livemode=None)

    def list_events(
        self,
        *,
        since: datetime,
        kinds: Collection[EventKind] | None = None,
        undelivered_only: bool = False,
    ) -> Iterator[FetchedEvent]:
        """From the dummy's own store, kept for ever. ``undelivered_only`` finds nothing: the
        dummy hands each event to the pipeline in the transaction that keeps it, so an event
        it kept was delivered."""
        if undelivered_only:
            return iter(())
        emitted = DummyEvent.objects.filter(created_at__gte=since).order_by("-created_at", "-id")
        fetched = (
            FetchedEvent(event_id=row.id, parsed=self.parse_event(row.payload), payload=row.payload)
            for row in emitted.iterator()
        )
        return (event for event in fetched if kinds is None or event.parsed.kind in kinds)

    def kind_of(self, provider_type: str) -> EventKind:
        return stripe_events.kind_of(provider_type)

    def check_credentials(self) -> AccountCheck:
        return AccountCheck(
            ok=True, livemode=False, detail="The dummy gateway needs no key; its money is not real."
        )

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        return signatures.verified_event(payload, signature, webhook_secret())


def _session(session: DummyCheckoutSession) -> CheckoutSession:
    return CheckoutSession(
        id=session.id,
        url=reverse("marketlink-dummy-checkout", args=[session.id]),
        status=session.status,
        payment_status=session.payment_status,
        payment_intent_id=session.payment_intent_id or None,
        amount_minor=session.amount_minor,
        currency=session.currency,
    )


def session_event(session: DummyCheckoutSession, event_type: str) -> tuple[bytes, str]:
    """A signed Stripe-shaped event about ``session``, as the webhook endpoint expects it."""
    return _signed(_event(session, event_type))


def emit_session_event(session: DummyCheckoutSession, event_type: str) -> tuple[bytes, str]:
    """``session_event``, kept in the dummy's own store as the provider's record of what it
    sent (call it in the transaction that delivers the event)."""
    event = _event(session, event_type)
    DummyEvent.objects.create(
        id=event["id"],
        event_type=event_type,
        payload=event,
        created_at=timezone.now(),  # to the microsecond: two events of one second keep their order
    )
    return _signed(event)


def _signed(event: dict[str, Any]) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    return payload, signatures.sign(payload, webhook_secret())


def _event(session: DummyCheckoutSession, event_type: str) -> dict[str, Any]:
    return {
        "id": f"evt_dummy_{secrets.token_hex(12)}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": session.id,
                "object": "checkout.session",
                "status": session.status,
                "payment_status": session.payment_status,
                "payment_intent": session.payment_intent_id or None,
                "amount_total": session.amount_minor,
                "currency": session.currency,
                "client_reference_id": str(session.order_id),
                "metadata": {"order_id": str(session.order_id)},
            }
        },
    }
