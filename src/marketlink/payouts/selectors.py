"""Reads of payouts: an order's payout as its answers show it, a vendor's balance and ledger,
and what needs staff (or an operator) now."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum

from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.payout_hooks import NONE, PayoutState
from marketlink.payouts.models import (
    ZERO,
    ConnectedAccount,
    EntryKind,
    Payout,
    PayoutEntry,
    PayoutStatus,
)
from marketlink.vendors.models import VendorProfile

CENT = Decimal("0.01")
# An order that ended unpaid (or was refunded before it was ever recorded paid) owes nothing.
UNPAID_ENDS = frozenset({OrderStatus.CANCELLED, OrderStatus.FAILED, OrderStatus.REFUNDED})
# Payouts whose share is still the vendor's to receive.
OWED = frozenset({PayoutStatus.HELD, PayoutStatus.DUE})


class PayoutView:
    """What ``orders.payout_hooks`` shows on the vendor's and staff's order answers."""

    def payout_of(self, order: RepairOrder) -> PayoutState:
        return payout_state(order)


def payout_state(order: RepairOrder) -> PayoutState:
    if not order.payouts_on:
        return NONE
    payout = Payout.objects.filter(order=order).first()
    if payout is None:
        unpaid = PayoutStatus.CANCELLED if order.status in UNPAID_ENDS else PayoutStatus.HELD
        return {"status": str(unpaid), "amount": order.vendor_share, "transfer_id": None}
    amount = payout.amount if payout.amount is not None else payout.share
    # A release an open dispute holds is shown held, whether or not it was owed already.
    status = str(PayoutStatus.HELD) if payout.disputed else payout.status
    return {"status": status, "amount": amount, "transfer_id": payout.transfer_id}


def account_of(vendor: VendorProfile) -> ConnectedAccount | None:
    return ConnectedAccount.objects.filter(vendor=vendor).first()


@dataclass(frozen=True)
class Balance:
    """A vendor's money, in their currency: ``held`` (shares of paid orders not released yet,
    less what a release owed recovers), ``released`` (transferred less reversed), ``reversed``,
    and ``debt`` (what the vendor owes: refused reversals and reversals under way). The ledger
    sums to ``held - debt``."""

    currency: str
    held: Decimal
    released: Decimal
    reversed: Decimal
    debt: Decimal
    ledger: Decimal


def as_money(total: Decimal | None) -> Decimal:
    """A sum as money: SQLite sums decimals in floating point."""
    return (total or ZERO).quantize(CENT)


def _total(entries: QuerySet[PayoutEntry], *kinds: str) -> Decimal:
    filtered = entries.filter(kind__in=kinds) if kinds else entries
    return as_money(filtered.aggregate(total=Sum("amount"))["total"])


def held_of(vendor: VendorProfile) -> Decimal:
    """Shares owed and not sent: a held payout's share, a due one's frozen amount."""
    payouts = Payout.objects.filter(vendor=vendor)
    held = payouts.filter(status=PayoutStatus.HELD).aggregate(t=Sum("share"))["t"]
    due = payouts.filter(status=PayoutStatus.DUE).aggregate(t=Sum("amount"))["t"]
    return as_money(held) + as_money(due)


def balance_of(vendor: VendorProfile, currency: str) -> Balance:
    entries = PayoutEntry.objects.filter(vendor=vendor)
    ledger = _total(entries)
    held = held_of(vendor)
    sent = -_total(entries, EntryKind.TRANSFER)
    taken_back = _total(entries, EntryKind.REVERSAL)
    return Balance(
        currency=currency,
        held=held,
        released=sent - taken_back,
        reversed=taken_back,
        debt=held - ledger,
        ledger=ledger,
    )


def debt_recoverable(vendor: VendorProfile) -> Decimal:
    """What a release may take back from the vendor now: the debts attributed to their
    payouts (reversals refused, partial refunds charged to them). A reversal still under way is
    not yet a debt: it may succeed."""
    return as_money(Payout.objects.filter(vendor=vendor, debt__gt=0).aggregate(t=Sum("debt"))["t"])


def entries_of(vendor: VendorProfile) -> QuerySet[PayoutEntry]:
    return PayoutEntry.objects.filter(vendor=vendor).order_by("-created_at", "-id")


def payouts_listed(
    *, vendor: uuid.UUID | None = None, status: str | None = None
) -> QuerySet[Payout]:
    payouts = Payout.objects.select_related("order", "vendor").order_by("-created_at")
    if vendor:
        payouts = payouts.filter(vendor_id=vendor)
    return payouts.filter(status=status) if status else payouts


def payouts_needing_attention() -> QuerySet[Payout]:
    return Payout.objects.filter(Q(needs_attention=True) | Q(status=PayoutStatus.DEBT))
