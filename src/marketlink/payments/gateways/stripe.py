"""The Stripe gateway: Checkout Sessions through the official SDK (the only module importing it).

``STRIPE_API_BASE`` points the SDK at another server speaking Stripe's API; tests and demos use
``marketlink.testing.stripe_server`` there, so this code runs unmodified against a real HTTP peer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import stripe

from marketlink import conf
from marketlink.payments.gateways.base import (
    CheckoutRequest,
    CheckoutSession,
    GatewayError,
    InvalidSignature,
    RefundResult,
)

logger = logging.getLogger(__name__)


class StripeGateway:
    name = "stripe"

    def _client(self) -> stripe.StripeClient:
        config = conf.get()
        base: Any = {"api": config.STRIPE_API_BASE} if config.STRIPE_API_BASE else None
        return stripe.StripeClient(
            config.STRIPE_SECRET_KEY, base_addresses=base, max_network_retries=2
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
            "payment_intent_data": {"metadata": {"order_id": request.order_id}},
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
            logger.info("checkout session %s was no longer open: %s", session_id, exc.__cause__)

    def refund(
        self, *, payment_intent_id: str, amount_minor: int, idempotency_key: str
    ) -> RefundResult:
        refund = self._call(
            "refund a payment",
            lambda client: client.v1.refunds.create(
                params={"payment_intent": payment_intent_id, "amount": amount_minor},
                options={"idempotency_key": idempotency_key},
            ),
        )
        return RefundResult(id=str(refund.id), status=str(refund.status))

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        config = conf.get()
        secret = config.STRIPE_WEBHOOK_SECRET
        if not secret.strip():
            # Checked here, not only by a system check (which gunicorn never runs): some SDK
            # releases verify with the empty key, and then anyone could sign an event.
            logger.error("STRIPE_WEBHOOK_SECRET is empty: refusing every webhook delivery")
            raise InvalidSignature(
                "Invalid Stripe signature: STRIPE_WEBHOOK_SECRET is not configured on this site."
            )
        if not signature.isascii():  # the SDK's compare_digest raises TypeError on it
            raise InvalidSignature("Invalid Stripe signature: the header is not ASCII.")
        try:
            # Stripe signs the body's text; SDK releases before 15.6 format bytes as "b'...'".
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSignature("The event body is not UTF-8 text.") from None
        try:
            stripe.WebhookSignature.verify_header(
                text, signature, secret, tolerance=config.STRIPE_WEBHOOK_TOLERANCE
            )
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature(f"Invalid Stripe signature: {exc.user_message or exc}") from None
        return json.loads(text)  # type: ignore[no-any-return]

    def _call(self, what: str, call: Any) -> Any:
        try:
            return call(self._client())
        except stripe.StripeError as exc:
            logger.warning("Stripe failed to %s: %s", what, exc)
            raise GatewayError(
                f"The payment provider failed to {what}; try again shortly."
            ) from exc


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
