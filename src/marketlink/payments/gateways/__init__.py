"""Payment gateways, one module each, behind :class:`~.base.PaymentGateway`."""

from __future__ import annotations

from marketlink import conf
from marketlink.payments.gateways.base import PaymentGateway


def get_gateway() -> PaymentGateway:
    """The gateway ``PAYMENT_GATEWAY`` names."""
    return gateway_named(conf.get().PAYMENT_GATEWAY)


def gateway_named(name: str) -> PaymentGateway:
    """The gateway called ``name`` (a stored event is read by the gateway that received it).
    Imported lazily, so a site on the dummy gateway never loads the stripe SDK."""
    if name == "stripe":
        from marketlink.payments.gateways.stripe import StripeGateway

        return StripeGateway()
    from marketlink.payments.gateways.dummy import DummyGateway

    return DummyGateway()
