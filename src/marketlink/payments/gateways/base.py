"""The one small interface every payment gateway implements.

Gateways speak in provider terms (sessions, payment intents, minor units) and know nothing of
HTTP requests or order status rules: the payments modules decide what an answer means for an
order. Events reach marketlink only through the signed webhook, whatever the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from marketlink.exceptions import InvalidInput, PaymentProviderError

# Stripe refuses a Checkout Session that ends sooner than 30 minutes after it is created; a minute
# of margin covers clock drift and the request's travel.
MIN_CHECKOUT_LIFE = timedelta(minutes=31)
CHECKOUT_EXPIRY_STEP = timedelta(minutes=5)


class GatewayError(PaymentProviderError):
    """The provider could not be reached or refused a well-formed request (502)."""


class InvalidSignature(InvalidInput):
    """A webhook whose signature, timestamp or body cannot be trusted (400)."""


@dataclass(frozen=True)
class CheckoutRequest:
    """What a gateway needs to open a hosted checkout for one order."""

    order_id: str
    amount_minor: int
    currency: str
    description: str
    customer_email: str
    expires_at: datetime
    success_url: str
    cancel_url: str
    idempotency_key: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # "open", "complete" or "expired", as Stripe says
    payment_status: str  # "paid", "unpaid" or "no_payment_required"
    payment_intent_id: str | None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True)
class RefundResult:
    id: str
    # "succeeded", "pending", "requires_action", "failed" or "canceled", as Stripe says: only a
    # succeeded refund has given the money back.
    status: str


class PaymentGateway(Protocol):
    name: str

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def fetch_checkout(self, session_id: str) -> CheckoutSession: ...

    def expire_checkout(self, session_id: str) -> None: ...

    def refund(
        self, *, payment_intent_id: str, amount_minor: int, idempotency_key: str
    ) -> RefundResult:
        """Ask for ``amount_minor`` of a captured payment back. The answer may be final or not:
        a pending refund settles later, through an event."""
        ...

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """The event in ``payload`` if ``signature`` proves the provider sent it; else raises
        :class:`InvalidSignature`."""
        ...
