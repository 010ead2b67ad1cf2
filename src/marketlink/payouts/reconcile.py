"""Reconcile's payouts check: the provider's transfers of each order whose release (or
reversal) may be unrecorded, listed by ``transfer_group``, and what the ledger lacks of them
recorded (a worker that died after the provider's answer and before the ledger's write), never a
second transfer made; and the accounts of gated vendors read again (an ``account.updated`` lost
on the way).

The provider is read first, outside any transaction; what its answer changes is written in a
transaction the caller may roll back (a dry run: nothing is asked of the provider but reads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any

from django.db.models import Q, QuerySet

from marketlink import conf
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import (
    GatewayError,
    ProviderAccount,
    ProviderTransfer,
    transfer_group,
)
from marketlink.payments.reconcile import PROVIDER_DOWN_AFTER, LimitReached, Result
from marketlink.payouts.accounts import account_record
from marketlink.payouts.ledger import recorded, reversal_seen, transfer_seen
from marketlink.payouts.models import ConnectedAccount, EntryKind, Payout, PayoutStatus


class Kind(StrEnum):
    TRANSFER_UNRECORDED = "transfer_unrecorded"
    REVERSAL_UNRECORDED = "reversal_unrecorded"
    ACCOUNT_CHANGED = "account_changed"


@dataclass(frozen=True)
class Outcome:
    """As payments' reconcile outcome: ``before``/``after`` are the payout's (or the vendor's
    readiness)."""

    check: str
    order_id: Any
    result: Result
    before: str
    after: str
    kind: Kind | None = None
    detail: str = ""


def payouts_plan(*, since: datetime) -> dict[str, int]:
    if not conf.get().PAYOUTS_ENABLED:
        return {}
    return {"transfers": _released(since).count(), "accounts": _gated().count()}


def payouts_reconcile(
    *, since: datetime, limit: int | None, run: Callable[[Callable[[], Outcome]], Outcome]
) -> Iterator[Outcome | LimitReached]:
    if not conf.get().PAYOUTS_ENABLED:
        return
    gateway = get_gateway()
    checks: list[tuple[str, QuerySet[Any], Callable[[Any], Any], Callable[..., Outcome]]] = [
        (
            "transfers",
            _released(since),
            lambda p: gateway.list_transfers(transfer_group=transfer_group(p.order_id)),
            _fix_transfers,
        ),
        ("accounts", _gated(), lambda a: gateway.fetch_account(a.account_id), _fix_account),
    ]
    failures = 0
    for name, candidates, ask, fix in checks:
        for count, item in enumerate(candidates.iterator()):
            if limit is not None and count == limit:
                yield LimitReached(name, limit)
                break
            subject = getattr(item, "order_id", None) or item.vendor_id
            if failures >= PROVIDER_DOWN_AFTER:
                detail = f"not asked: the provider failed {failures} times in a row"
                yield Outcome(name, subject, Result.NOT_CHECKED, "", "", None, detail)
                continue
            try:
                answer = ask(item)
            except GatewayError as exc:
                failures += 1
                why = f"could not ask the provider: {exc.message}"
                yield Outcome(name, subject, Result.NOT_CHECKED, "", "", None, why)
                continue
            failures = 0
            yield run(partial(fix, item, answer))


def _released(since: datetime) -> QuerySet[Payout]:
    """Payouts, changed in the window, where a worker may have died between the provider's
    answer and the ledger's write: a release owed and not recorded (waiting, failed, or
    cancelled by a refund while it was being made), or a reversal under way. A recorded
    release needs no look: its transfer is in the ledger, and a reversal made in Stripe's
    dashboard reaches the site as ``transfer.reversed`` (replayable from Stripe's events)."""
    unrecorded = Q(status__in=[PayoutStatus.DUE, PayoutStatus.FAILED]) | Q(
        status=PayoutStatus.CANCELLED, amount__isnull=False, transfer_id__isnull=True
    )
    return Payout.objects.filter(
        unrecorded | Q(reversal_due__gt=0), updated_at__gte=since
    ).order_by("-updated_at", "-pk")


def _gated() -> QuerySet[ConnectedAccount]:
    ready = Q(payouts_enabled=True, transfers_active=True)
    return ConnectedAccount.objects.exclude(ready).filter(deauthorized=False).order_by("pk")


def _fix_transfers(payout: Payout, listed: tuple[ProviderTransfer, ...]) -> Outcome:
    before = payout.status
    account = ConnectedAccount.objects.filter(vendor_id=payout.vendor_id).first()
    ours = [t for t in listed if account is not None and t.destination == account.account_id]
    said, kind = [], None
    for transfer in ours:
        if not recorded(payout, EntryKind.TRANSFER, transfer.id):
            said.append(transfer_seen(payout, transfer, by="reconcile"))
            kind = Kind.TRANSFER_UNRECORDED
            continue
        for reversal in transfer.reversals:
            if not recorded(payout, EntryKind.REVERSAL, reversal.id):
                said.append(reversal_seen(payout, reversal))
                kind = kind or Kind.REVERSAL_UNRECORDED
    if kind is None:
        return Outcome("transfers", payout.order_id, Result.AGREES, before, before)
    after = Payout.objects.values_list("status", flat=True).get(pk=payout.pk)
    result = Result.NEEDS_ATTENTION if len(ours) > 1 else Result.FIXED
    return Outcome("transfers", payout.order_id, result, before, after, kind, "; ".join(said))


def _fix_account(account: ConnectedAccount, state: ProviderAccount) -> Outcome:
    before = "ready" if account.ready else "not ready"
    now = account_record(account_id=account.account_id, state=state) or account
    after = "ready" if now.ready else "not ready"
    if after == before:
        return Outcome("accounts", account.vendor_id, Result.AGREES, before, after)
    detail = f"account {account.account_id}: {after}"
    return Outcome(
        "accounts", account.vendor_id, Result.FIXED, before, after, Kind.ACCOUNT_CHANGED, detail
    )
