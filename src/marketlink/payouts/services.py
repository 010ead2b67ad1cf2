"""What changes of an order (and of its disputes) do to its payout, each in the transaction of
the change itself: the ledger's entries when it is paid, the release owed when it is completed
(or paid), the release cancelled or the transfer's reversal owed when it is refunded.

Orders tell payouts through ``orders.signals.order_status_changing`` (sent inside the
transition's transaction); a dispute through ``payments.event_hooks``. Each writes rows only
(the ledger, the payout, outbox rows): the provider is called later, by the outbox's handlers
(``releases``), so a rolled-back change owes nothing and a committed one can never be lost.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from marketlink import conf
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.selectors import PAID_STATUSES
from marketlink.outbox.services import outbox_write
from marketlink.payments.models import Dispute, DisputeOutcome
from marketlink.payouts.ledger import (
    RELEASE,
    entry_add,
    release_subject,
    reversal_owe,
)
from marketlink.payouts.models import ZERO, EntryKind, Payout, PayoutEntry, PayoutStatus
from marketlink.payouts.selectors import as_money
from marketlink.vendors.models import VendorProfile

logger = logging.getLogger(__name__)

NOT_SENT = frozenset({PayoutStatus.HELD, PayoutStatus.DUE, PayoutStatus.FAILED})


def on_order_status_changing(
    *, order: RepairOrder, previous: str, to: str, source: str, **_: Any
) -> None:
    """``order_status_changing``'s receiver (inside the change's transaction)."""
    if not order.payouts_on:
        return  # placed while payouts were off: never paid out
    if to == OrderStatus.PAID:
        payout_opened(order)
    if to == OrderStatus.REFUNDED:
        payout_given_back(order, cause="refund")
    elif release_is_owed(order, to):
        release_owe(order)


def release_is_owed(order: RepairOrder, status: str | None = None) -> bool:
    """Whether the vendor's share of ``order`` (in ``status``, else its own) should be sent:
    once completed, or once paid with ``PAYOUT_RELEASE`` ``on_payment``; with payouts on."""
    config = conf.get()
    status = status or order.status
    if not (config.PAYOUTS_ENABLED and order.payouts_on):
        return False
    if config.PAYOUT_RELEASE == "on_payment":
        return status in PAID_STATUSES
    return status == OrderStatus.COMPLETED


def payout_opened(order: RepairOrder) -> Payout:
    """The order is paid: its payout is held, and the ledger says what the vendor is owed."""
    payout = Payout.objects.filter(order=order).first()
    if payout is not None:
        return payout
    payout = Payout.objects.create(
        order=order,
        vendor_id=order.vendor_id,
        currency=order.currency,
        share=order.vendor_share,
        status=PayoutStatus.HELD,
    )
    entry_add(payout=payout, kind=EntryKind.SALE, amount=order.total_amount)
    entry_add(payout=payout, kind=EntryKind.PLATFORM_FEE, amount=-order.platform_fee)
    # Events come in any order: a dispute heard of before the payment counts from the start.
    for dispute in Dispute.objects.filter(order=order):
        if dispute.outcome == DisputeOutcome.LOST:
            cause, disputed = f"lost-{dispute.provider_dispute_id}", dispute.provider_dispute_id
            payout_given_back(order, cause=cause, provider_id=disputed)
        elif dispute.outcome == DisputeOutcome.OPEN and not dispute.provider_status.startswith(
            "warning"
        ):
            Payout.objects.filter(pk=payout.pk).update(disputed=True, needs_attention=True)
    return payout


def release_owe(order: RepairOrder) -> str:
    """Owe the release of a held payout: its amount frozen now (the share, less what it
    recovers of the vendor's debts), and its outbox row written. A payout an open dispute
    holds waits for the dispute's end."""
    payout = Payout.objects.select_for_update().filter(order=order).first()
    if payout is None or payout.status != PayoutStatus.HELD:
        return "nothing to release"
    if payout.disputed:
        return "held while its dispute is open"
    # One release of the vendor's at a time: two must not recover the same debt.
    VendorProfile.objects.select_for_update().filter(pk=payout.vendor_id).first()
    recovered = _recover(payout)
    payout.amount = payout.share - recovered
    payout.status = PayoutStatus.DUE
    payout.save()
    outbox_write(
        kind=RELEASE, subject_id=release_subject(payout), payload={"amount": str(payout.amount)}
    )
    said = f"release of {payout.amount} owed"
    return f"{said} ({recovered} of debt recovered)" if recovered else said


def _recover(payout: Payout) -> Decimal:
    """Take the vendor's debts (oldest first, its own first) out of this release, never below
    zero; each recovery is kept on the payout, so a refund of this order gives it back."""
    left = payout.share
    recoveries: dict[str, str] = {}
    debts = Payout.objects.select_for_update().filter(vendor_id=payout.vendor_id, debt__gt=0)
    for debtor in sorted(debts, key=lambda p: (p.pk != payout.pk, p.created_at)):
        taken = min(debtor.debt, left)
        if taken <= 0:
            break
        target = payout if debtor.pk == payout.pk else debtor
        target.debt -= taken
        if target.debt == 0 and target.status == PayoutStatus.DEBT:
            target.status = PayoutStatus.REVERSED
            target.note = f"debt recovered from the release of order {payout.order_id}"
        if target is not payout:
            target.save()
        recoveries[str(debtor.pk)] = str(taken)
        left -= taken
    payout.recoveries = recoveries
    payout.recovered = payout.share - left
    return payout.recovered


def _give_recoveries_back(payout: Payout) -> None:
    """This order's money went back to the customer: what its release took of older debts is
    owed again."""
    for debtor_pk, amount in payout.recoveries.items():
        if debtor_pk == str(payout.pk):
            continue  # its own debt: the refund settles it (see payout_given_back)
        debtor = Payout.objects.select_for_update().get(pk=debtor_pk)
        debtor.debt += Decimal(amount)
        if debtor.status in (PayoutStatus.RELEASED, PayoutStatus.REVERSED):
            debtor.status = PayoutStatus.DEBT
        debtor.save()
    payout.recoveries, payout.recovered = {}, ZERO


def payout_given_back(order: RepairOrder, *, cause: str, provider_id: str = "") -> str:
    """The order's money went back to the customer (a whole refund, ``provider_id`` empty, or a
    lost dispute): the vendor's sale and the platform's fee are undone; a release not made is
    cancelled, a transfer made is owed back (its reversal)."""
    payout = Payout.objects.select_for_update().filter(order=order).first()
    if payout is None:
        return ""
    if payout.given_back_at is not None:
        return "already given back"  # a refund and a lost dispute of one order: once
    payout.given_back_at = timezone.now()
    given_back = PayoutEntry.objects.filter(order=order, kind=EntryKind.REFUND)
    charged = -as_money(given_back.aggregate(total=Sum("amount"))["total"])
    entry_add(
        payout=payout,
        kind=EntryKind.REFUND,
        amount=-(order.total_amount - charged),
        provider_id=provider_id,
    )
    entry_add(
        payout=payout, kind=EntryKind.FEE_REFUND, amount=order.platform_fee, provider_id=provider_id
    )
    _give_recoveries_back(payout)
    payout.debt = ZERO  # what it was charged before is part of what went back
    payout.disputed = False
    if payout.status in NOT_SENT:
        payout.status = PayoutStatus.CANCELLED
        payout.note = f"{cause}: the release is cancelled; nothing was sent"
        said = "release cancelled"
    else:
        if payout.status == PayoutStatus.DEBT:
            payout.status = PayoutStatus.RELEASED  # its reversal, under way, says what follows
        said = reversal_owe(payout, cause=cause)
    payout.save()
    logger.info("payout of order %s: %s (%s)", order.pk, said, cause)
    return said
