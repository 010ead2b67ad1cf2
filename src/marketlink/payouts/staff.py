"""What staff do to payouts from the admin: release one now, try a refused reversal again,
charge a vendor a partial refund made in the provider's dashboard, and settle a debt by hand.
Each writes rows in one transaction; the provider is asked by the outbox's handlers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.exceptions import Conflict
from marketlink.money import from_minor_units
from marketlink.orders.models import OrderStatus
from marketlink.orders.selectors import PAID_STATUSES
from marketlink.outbox.selectors import entries_of
from marketlink.outbox.services import outbox_retry
from marketlink.payments.models import Refund, RefundStatus
from marketlink.payouts.ledger import RELEASE, entry_add, locked, release_subject, reversal_owe
from marketlink.payouts.models import EntryKind, Payout, PayoutEntry, PayoutStatus
from marketlink.payouts.selectors import as_money
from marketlink.payouts.services import release_owe
from marketlink.vendors.models import VendorProfile


def payout_release_now(payout: Payout) -> str:
    """Release a paid payout now (staff decide it is owed), or a failed one again."""
    with transaction.atomic():
        payout = locked(payout.pk)
        if payout.status == PayoutStatus.HELD and payout.order.status in PAID_STATUSES:
            return release_owe(payout.order)
        if payout.status not in (PayoutStatus.DUE, PayoutStatus.FAILED):
            return f"nothing to release: the payout is {payout.status}"
        entry = entries_of(RELEASE, release_subject(payout)).first()
        asked = outbox_retry(ids=[entry.pk]) if entry is not None else 0
        return "the release is asked again" if asked else "the release is under way already"


def reversal_again(payout: Payout) -> str:
    """Ask again for the reversal a vendor's debt stands for (their balance may cover it now)."""
    with transaction.atomic():
        payout = locked(payout.pk)
        left = (payout.amount or 0) - payout.amount_reversed - payout.reversal_due
        amount = min(payout.debt, left)
        if payout.status != PayoutStatus.DEBT or amount <= 0:
            return "no refused reversal to ask again"
        payout.debt -= amount
        payout.status = PayoutStatus.RELEASED
        said = reversal_owe(payout, cause=f"again-{timezone.now():%Y%m%d%H%M%S}", amount=amount)
        payout.save()
    return said


def partial_refund_charge(payout: Payout) -> str:
    """A partial refund made in the provider's dashboard reverses nothing by itself: staff
    charge it to the vendor here, as a partial reversal of their transfer (or, before the
    release, a debt the release recovers), with its ledger entry."""
    with transaction.atomic():
        payout = locked(payout.pk)
        order = payout.order
        if order.status == OrderStatus.REFUNDED or payout.given_back_at is not None:
            return "the order's money went back whole: its reversal covers it"
        succeeded = Refund.objects.filter(
            order=order,
            payment_intent_id=order.payment_intent_id,
            status=RefundStatus.SUCCEEDED,
            provider_refund_id__isnull=False,
        )
        said = []
        for refund in succeeded:
            amount = from_minor_units(refund.amount_minor, refund.currency)
            if not entry_add(
                payout=payout,
                kind=EntryKind.REFUND,
                amount=-amount,
                provider_id=str(refund.provider_refund_id),
                note="partial refund charged to the vendor by staff",
            ):
                continue
            if payout.transfer_id:
                cause = f"part-{refund.provider_refund_id}"
                said.append(reversal_owe(payout, cause=cause, amount=amount))
            else:
                payout.debt += amount
                said.append(f"{amount} charged: recovered from the release")
        payout.save()
    return "; ".join(said) or "no partial refund left to charge"


def debt_settle(
    *, vendor: VendorProfile, amount: Decimal, note: str, user: Any, order_id: Any = None
) -> PayoutEntry:
    """Staff settle ``amount`` of a vendor's debt by hand (paid outside the provider, or
    forgiven): an adjustment entry with the note, and the debts it settles (the order's first,
    then the oldest) cleared."""
    with transaction.atomic():
        debts = list(Payout.objects.select_for_update().filter(vendor=vendor, debt__gt=0))
        owed = as_money(sum((payout.debt for payout in debts), Decimal(0)))
        if amount <= 0 or amount > owed:
            raise Conflict(f"The vendor owes {owed}: settle more than 0 and at most that.")
        left = amount
        first = str(order_id)
        for payout in sorted(debts, key=lambda p: (str(p.order_id) != first, p.created_at)):
            taken = min(payout.debt, left)
            payout.debt -= taken
            if payout.debt == 0 and payout.status == PayoutStatus.DEBT:
                payout.status = PayoutStatus.RELEASED
                payout.needs_attention = False
            payout.note = f"debt of {taken} settled by staff: {note}"[:2000]
            payout.save()
            left -= taken
            if left <= 0:
                break
        entry = PayoutEntry(
            vendor=vendor,
            order_id=order_id,
            kind=EntryKind.ADJUSTMENT,
            amount=amount,
            currency=debts[0].currency,
            note=note[:500],
            created_by=user,
        )
        entry.save(force_insert=True)
    return entry
