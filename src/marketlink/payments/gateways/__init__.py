"""Payment gateways, one module each, behind :class:`~.base.PaymentGateway`."""

from __future__ import annotations

from marketlink import conf
from marketlink.payments.gateways.base import PaymentGateway


def get_gateway() -> PaymentGateway:
    """The gateway ``PAYMENT_GATEWAY`` names (imported lazily: only the Stripe module imports
    the stripe SDK)."""
    if conf.get().PAYMENT_GATEWAY == "stripe":
        from marketlink.payments.gateways.stripe import StripeGateway

        return StripeGateway()
    from marketlink.payments.gateways.dummy import DummyGateway

    return DummyGateway()
