"""The one hook through which orders reaches payments, without importing it.

Orders sits below payments (DESIGN section 11): it may not import the payments app, lazily or
not. What an order's answers need from payments (its ``payment_url``, the eager checkout right
after booking, whether the provider already says a checkout is paid) it asks of the
:class:`PaymentHooks` the payments app registers in its ``AppConfig.ready()``. Without payments
installed the defaults apply: nothing to pay, nothing to open. Status changes travel the other
way through the public signals (``marketlink.orders.signals``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from marketlink.orders.models import RepairOrder


class PaymentHooks(Protocol):
    def payment_url(
        self, order: RepairOrder, build_absolute_uri: Callable[[str], str]
    ) -> str | None:
        """How the customer pays this order now (None: nothing to pay)."""
        ...

    def after_booking(self, order: RepairOrder, base_url: str) -> None:
        """Run right after a booking committed (the seed's eager checkout); may raise an API
        error, which the booking answers with."""
        ...

    def provider_says_paid(self, order: RepairOrder) -> bool:
        """Whether the provider already reports this pending order's checkout paid."""
        ...


class NoPayments:
    def payment_url(
        self, order: RepairOrder, build_absolute_uri: Callable[[str], str]
    ) -> str | None:
        return None

    def after_booking(self, order: RepairOrder, base_url: str) -> None:
        return None

    def provider_says_paid(self, order: RepairOrder) -> bool:
        return False


_hooks: PaymentHooks = NoPayments()


def register(hooks: PaymentHooks) -> None:
    global _hooks
    _hooks = hooks


def get() -> PaymentHooks:
    return _hooks
