"""The payments app's answers to what orders asks (``marketlink.orders.payment_hooks``),
registered in ``PaymentsConfig.ready()``."""

from __future__ import annotations

from collections.abc import Callable

from marketlink import conf
from marketlink.orders.models import RepairOrder
from marketlink.payments import checkout, selectors


class Payments:
    def payment_url(
        self, order: RepairOrder, build_absolute_uri: Callable[[str], str]
    ) -> str | None:
        return selectors.payment_url(order, build_absolute_uri)

    def after_booking(self, order: RepairOrder, base_url: str) -> None:
        if conf.get().PAYMENT_LINK_MODE == "eager":
            checkout.checkout_begin_eagerly(order=order, base_url=base_url)

    def provider_says_paid(self, order: RepairOrder) -> bool:
        session_id = order.checkout_session_id
        return bool(session_id) and checkout.provider_says_paid(session_id or "")
