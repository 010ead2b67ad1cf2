"""The dummy gateway, whole: the gateway (``gateway``), its hosted checkout page (``views`` and
``templates/``). The embedded default, and for sites without a payment provider."""

from marketlink.payments.gateways.dummy.gateway import DummyGateway, session_event, webhook_secret

__all__ = ["DummyGateway", "session_event", "webhook_secret"]
