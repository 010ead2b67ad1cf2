"""The one hook through which an order's answer shows its payout, without importing payouts.

Payouts sits above orders (and payments): orders may not import it. The vendor's and staff's
answers show ``payout: {status, amount, transfer_id}``, which the payouts app knows; it registers
a :class:`PayoutView` in its ``AppConfig.ready()``. Without it every order's payout is ``none``,
as with payouts off.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, TypedDict

from marketlink.orders.models import RepairOrder


class PayoutState(TypedDict):
    status: str
    amount: Decimal | None
    transfer_id: str | None


NONE: PayoutState = {"status": "none", "amount": None, "transfer_id": None}


class PayoutView(Protocol):
    def payout_of(self, order: RepairOrder) -> PayoutState:
        """Where the vendor's share of ``order`` stands."""
        ...


class NoPayouts:
    def payout_of(self, order: RepairOrder) -> PayoutState:
        return NONE


_view: PayoutView = NoPayouts()


def register(view: PayoutView) -> None:
    global _view
    _view = view


def get() -> PayoutView:
    return _view
