"""The ledger's writes: each movement of a vendor's money as an entry (never changed), and what
the provider's transfers and reversals, once seen, make of a payout.

A transfer or reversal can be seen twice (the answer to the request that made it, its webhook,
reconcile's listing, a retry's lookup): an entry is unique per order, kind and provider id, so
the second sighting finds it recorded and changes nothing. Everything about one payout happens
under its row lock.
"""

from __future__ import annotations

import hashlib
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.money import from_minor_units
from marketlink.outbox.services import outbox_write
from marketlink.payments.gateways.base import ProviderReversal, ProviderTransfer
from marketlink.payouts.models import ZERO, EntryKind, Payout, PayoutEntry, PayoutStatus

logger = logging.getLogger(__name__)

RELEASE = "payout_release"
REVERSAL = "payout_reversal"


def entry_add(
    *,
    payout: Payout,
    kind: str,
    amount: Decimal,
    provider_id: str = "",
    note: str = "",
    created_by: Any = None,
) -> bool:
    """Add one entry in the caller's transaction; False if this movement was already recorded
    (or moves nothing)."""
    if amount == 0 and kind != EntryKind.ADJUSTMENT:
        return False
    entry = PayoutEntry(
        vendor_id=payout.vendor_id,
        order_id=payout.order_id,
        kind=kind,
        amount=amount,
        currency=payout.currency,
        provider_id=provider_id,
        note=note[:500],
        created_by=created_by,
    )
    if kind != EntryKind.ADJUSTMENT and recorded(payout, kind, provider_id):
        return False
    entry.save(force_insert=True)
    return True


def recorded(payout: Payout, kind: str, provider_id: str = "") -> bool:
    return PayoutEntry.objects.filter(
        order_id=payout.order_id, kind=kind, provider_id=provider_id
    ).exists()


def locked(payout_pk: Any) -> Payout:
    return Payout.objects.select_for_update().select_related("order").get(pk=payout_pk)


def transfer_seen(payout: Payout, transfer: ProviderTransfer, *, by: str) -> str:
    """Record a transfer of ``payout``'s order the provider made (``by``: who saw it). A refund
    or a lost dispute that came while it was being made owes its reversal now. A second
    transfer for one order (which marketlink never asks for) is recorded and flagged."""
    with transaction.atomic():
        payout = locked(payout.pk)
        amount = from_minor_units(transfer.amount_minor, payout.currency)
        if not entry_add(
            payout=payout, kind=EntryKind.TRANSFER, amount=-amount, provider_id=transfer.id
        ):
            said = f"transfer {transfer.id} already recorded"
        elif payout.transfer_id and payout.transfer_id != transfer.id:
            payout.needs_attention = True
            payout.note = (
                f"a second transfer {transfer.id} of {amount} was made for this order (the first "
                f"is {payout.transfer_id}): reverse it at the provider"
            )
            payout.save()
            logger.error("payout of order %s: %s", payout.order_id, payout.note)
            said = "a second transfer: flagged for staff"
        else:
            said = _released(payout, transfer, amount, by)
        for reversal in transfer.reversals:
            said += "; " + _reversal_recorded(payout, reversal)
    return said


def _released(payout: Payout, transfer: ProviderTransfer, amount: Decimal, by: str) -> str:
    gone = payout.status == PayoutStatus.CANCELLED  # refunded or lost while it was being made
    payout.transfer_id = transfer.id
    payout.released_at = payout.released_at or timezone.now()
    payout.status = PayoutStatus.RELEASED
    if payout.amount is not None and payout.amount != amount:
        payout.needs_attention = True
        payout.note = f"transfer {transfer.id} sent {amount}, {payout.amount} was owed"
    payout.amount = amount
    said = f"transfer {transfer.id} of {amount} recorded ({by})"
    logger.info(
        "payout of order %s: %s",
        payout.order_id,
        said,
        extra={
            "event": "payout.released",
            "order_id": payout.order_id,
            "vendor_id": payout.vendor_id,
        },
    )
    if gone:
        said += "; " + reversal_owe(payout, cause=f"late-{transfer.id}")
    payout.save()
    return said


def reversal_owe(payout: Payout, *, cause: str, amount: Decimal | None = None) -> str:
    """Owe the reversal of what is left of the payout's transfer (or ``amount`` of it), in the
    caller's transaction, the payout locked and saved by the caller. ``cause`` names why (a
    refund, a dispute, a partial refund): one reversal row per cause."""
    rest = (payout.amount or ZERO) - payout.amount_reversed - payout.reversal_due
    amount = rest if amount is None else min(amount, rest)
    if not payout.transfer_id or amount <= 0:
        return "nothing left to reverse"
    payout.reversal_due += amount
    outbox_write(
        kind=REVERSAL,
        subject_id=subject(payout.order_id, cause),
        payload={"amount": str(amount), "transfer_id": payout.transfer_id},
    )
    return f"reversal of {amount} owed"


def reversal_seen(payout: Payout, reversal: ProviderReversal) -> str:
    with transaction.atomic():
        return _reversal_recorded(locked(payout.pk), reversal)


def _reversal_recorded(payout: Payout, reversal: ProviderReversal) -> str:
    """A reversal of the payout's transfer: ours (under way), or made at the provider (its
    dashboard), which pays the vendor's debt down."""
    amount = from_minor_units(reversal.amount_minor, payout.currency)
    if not entry_add(
        payout=payout, kind=EntryKind.REVERSAL, amount=amount, provider_id=reversal.id
    ):
        return f"reversal {reversal.id} already recorded"
    payout.amount_reversed += amount
    ours = min(payout.reversal_due, amount)
    payout.reversal_due -= ours
    paid_down = min(payout.debt, amount - ours)
    payout.debt -= paid_down
    if amount - ours - paid_down > 0:
        payout.needs_attention = True
        payout.note = f"reversal {reversal.id} was made at the provider, not asked for by a refund"
    payout.status = payout_status_after_reversal(payout)
    payout.save()
    return f"reversal {reversal.id} of {amount} recorded"


def payout_status_after_reversal(payout: Payout) -> str:
    if payout.debt > 0:
        return PayoutStatus.DEBT
    if payout.amount is not None and payout.amount_reversed >= payout.amount:
        return PayoutStatus.REVERSED
    return PayoutStatus.RELEASED


def release_subject(payout: Payout) -> str:
    """The release's outbox subject: the order, or, once a dispute held it, a release again."""
    return str(payout.order_id) if not payout.holds else f"{payout.order_id}:{payout.holds}"


def subject(order_id: Any, cause: str) -> str:
    """An outbox subject for one cause of a reversal (fits the column, stays distinct)."""
    found = f"{order_id}:{cause}"
    if len(found) <= 64:
        return found
    return f"{order_id}:{hashlib.sha256(cause.encode()).hexdigest()[:24]}"
