"""What the operator's command and the admin ask of payouts: the releases owed and not made,
making them now (in the caller's process, through their outbox rows, so a consumer that is down
stops nothing), and saying what a dry run would send without asking the provider for anything
but reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from marketlink import conf
from marketlink.orders.models import OrderStatus
from marketlink.orders.selectors import PAID_STATUSES
from marketlink.outbox.drainer import drain
from marketlink.outbox.models import EntryStatus
from marketlink.outbox.selectors import entries_of
from marketlink.outbox.services import outbox_retry
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import transfer_group
from marketlink.payouts.ledger import RELEASE, release_subject
from marketlink.payouts.models import ConnectedAccount, Payout, PayoutStatus
from marketlink.payouts.selectors import debt_recoverable
from marketlink.payouts.services import release_is_owed, release_owe

RETRYABLE = (EntryStatus.PENDING, EntryStatus.FAILED)
UNDER_WAY = "under way: a consumer is releasing it now"


def releases_due() -> QuerySet[Payout]:
    """Every release that should have happened and did not, with no grace period: held
    payouts whose order is completed (paid, with ``on_payment``), and releases owed but not
    made (waiting for a retry, or failed). A payout an open dispute holds is not due."""
    owed_statuses = (
        PAID_STATUSES if conf.get().PAYOUT_RELEASE == "on_payment" else {OrderStatus.COMPLETED}
    )
    held = Q(status=PayoutStatus.HELD, order__status__in=list(owed_statuses))
    owed = Q(status__in=[PayoutStatus.DUE, PayoutStatus.FAILED])
    return (
        Payout.objects.filter(held | owed, disputed=False, order__payouts_on=True)
        .select_related("order")
        .order_by("created_at")
    )


@dataclass(frozen=True)
class Release:
    """One payout asked to be released: what it was, what it is now, what was (or, on a dry
    run, would be) sent."""

    order_id: uuid.UUID
    before: str
    after: str
    amount: Decimal | None
    transfer_id: str | None
    detail: str


def releases_plan(payouts: Iterable[Payout]) -> list[Release]:
    """What releasing would do, read only: the amount it would send (a held payout's share
    less the vendor's debt it would recover), or the transfer already at the provider that it
    would record. Nothing is written anywhere."""
    gateway = get_gateway()
    planned = []
    for payout in payouts:
        if payout.status == PayoutStatus.HELD:
            recover = min(payout.share, debt_recoverable(payout.vendor))
            amount = payout.share - recover
        else:
            amount = payout.amount or Decimal(0)
        found = gateway.list_transfers(transfer_group=transfer_group(payout.order_id))
        account = ConnectedAccount.objects.filter(vendor_id=payout.vendor_id).first()
        made = next((t for t in found if account and t.destination == account.account_id), None)
        if made is not None:
            detail = f"transfer {made.id} found at the provider: would be recorded"
        elif not release_is_owed(payout.order) and payout.status == PayoutStatus.HELD:
            detail = f"not owed: the order is {payout.order.status}"
        else:
            to = account.account_id if account else "no account yet"
            detail = f"would send {amount} {payout.currency.upper()} to {to}"
        planned.append(Release(payout.order_id, payout.status, payout.status, amount, None, detail))
    return planned


def releases_make(payouts: Iterable[Payout]) -> list[Release]:
    """Release now: owe what is owed (its row written), make waiting or failed rows due, and
    run them here. Returns each payout's outcome."""
    chosen = list(payouts)
    before = {payout.pk: str(payout.status) for payout in chosen}
    rows = []
    for payout in chosen:
        if payout.status == PayoutStatus.HELD and release_is_owed(payout.order):
            with transaction.atomic():
                release_owe(payout.order)
            payout.refresh_from_db()
        entry = entries_of(RELEASE, release_subject(payout)).first()
        lapsed = (
            entry is not None
            and entry.status == EntryStatus.RUNNING
            and (entry.claimed_until is None or entry.claimed_until < timezone.now())
        )
        if entry is not None and (entry.status in RETRYABLE or lapsed):
            rows.append(entry.pk)  # a running one whose drainer died is run here too
    outbox_retry(ids=rows)
    if rows:
        drain(kinds=[RELEASE], only=rows)
    return [_outcome(payout, before[payout.pk]) for payout in chosen]


def _outcome(payout: Payout, before: str) -> Release:
    now = Payout.objects.select_related("order").get(pk=payout.pk)
    entry = entries_of(RELEASE, release_subject(now)).first()
    if now.status == PayoutStatus.RELEASED:
        detail = "released" if now.transfer_id else "released: nothing to send (0)"
    elif now.status == PayoutStatus.HELD:
        detail = f"not owed: the order is {now.order.status}"
    elif entry is not None and entry.status == EntryStatus.RUNNING:
        detail = UNDER_WAY
    else:
        detail = f"not released: {entry.last_error if entry else 'no release row'}"
    return Release(now.order_id, before, now.status, now.amount, now.transfer_id, detail)
