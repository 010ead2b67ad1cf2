"""The outbox's payout kinds: ``payout_release`` (one transfer of a vendor's share, ever) and
``payout_reversal`` (taking a transfer back after a refund or a lost dispute).

Each request carries the idempotency key ``marketlink-<outbox row id>-<n>``, kept in the row's
payload: Stripe saves its first answer under a key (errors included) and replays it for 24
hours. So the same key goes again after a network error, a 503, a rate limit or a refused key
(nothing was decided); after a definite answer (400, 402, 404, or a 500) the next attempt takes
the next key, and first lists the order's transfers (``transfer_group``) to record one it finds
instead of making another; so does any attempt more than 24 hours after its key was first used.
The amount, frozen on the row, never changes between attempts. A handler that dies after the
provider's answer and before the ledger's write is run again (its claim lapses) and gets the same
answer under the same key, or reconcile records the transfer from the provider's listing: never
a second transfer.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.money import to_minor_units
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.registry import Done, Failed, Kind, Outcome, Retry, one_at_a_time, register
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import (
    GatewayError,
    ProviderTransfer,
    ReversalRequest,
    TransferRequest,
    transfer_group,
)
from marketlink.payouts.ledger import (
    RELEASE,
    REVERSAL,
    locked,
    payout_status_after_reversal,
    release_subject,
    reversal_seen,
    transfer_seen,
)
from marketlink.payouts.models import ConnectedAccount, Payout, PayoutStatus

logger = logging.getLogger(__name__)

# How long Stripe keeps an idempotency key's answer.
KEY_MEMORY = timedelta(hours=24)


def _payout_of(entry: OutboxEntry) -> Payout | None:
    order_id = uuid.UUID(entry.subject_id.split(":", 1)[0])
    return Payout.objects.select_related("order").filter(order_id=order_id).first()


def _key(entry: OutboxEntry, *, look_first: bool = False) -> tuple[str, bool]:
    """The request's idempotency key, and whether to look at the provider before sending it:
    after a refusal (a new key), when the key is older than the provider's memory of it, and
    (``look_first``) before the first key of a row that is not the first to ask. A look owed
    stays owed until one is made (:func:`_looked`)."""
    state: dict[str, Any] = dict(entry.payload)
    now = timezone.now()
    if state.get("key") is None or state.get("refused"):
        if state.get("key") is not None or look_first:
            state["look"] = True
        # Counted in the row, never from the claims: two drainers of one row (a lapsed claim)
        # take the same key, so the provider makes one transfer for both.
        number = int(state.get("tries", 0)) + 1
        state.update(key=f"marketlink-{entry.pk}-{number}", tries=number, refused=False)
        state["key_at"] = now.isoformat()
    elif now - datetime.fromisoformat(state["key_at"]) > KEY_MEMORY:
        state.update(look=True, key_at=now.isoformat())
    _save(entry, state)
    return str(state["key"]), bool(state.get("look"))


def _looked(entry: OutboxEntry) -> None:
    _save(entry, {**entry.payload, "look": False})


def _save(entry: OutboxEntry, state: dict[str, Any]) -> None:
    entry.payload = state
    OutboxEntry.objects.filter(pk=entry.pk).update(payload=state)


def _refused(entry: OutboxEntry) -> None:
    """The next attempt takes the next key (the provider would replay this refusal)."""
    _save(entry, {**entry.payload, "refused": True})


def _why(exc: GatewayError) -> str:
    return f"{exc.message}" + (f" ({exc.reason})" if exc.reason else "")


# --- payout_release -----------------------------------------------------------------------------


def release(entry: OutboxEntry) -> Outcome:
    payout = _payout_of(entry)
    if payout is None:
        return Failed("no payout for this order")
    if payout.status not in (PayoutStatus.DUE, PayoutStatus.FAILED):
        return Done(f"nothing to send: the payout is {payout.status}")
    if payout.disputed:
        return Done("held: a dispute is open (released again if it is won)")
    if entry.subject_id != release_subject(payout):
        return Done("superseded by a later release of the same payout")
    amount = Decimal(entry.payload["amount"])
    if amount == 0:
        return Done(_released_without_transfer(payout))
    account = ConnectedAccount.objects.filter(vendor_id=payout.vendor_id).first()
    if account is None:
        return Retry("the vendor has no payout account")
    order = payout.order
    gateway = get_gateway()
    group = transfer_group(order.pk)
    # A release owed again (after a dispute) may follow one that reached the provider.
    key, look = _key(entry, look_first=payout.holds > 0)
    try:
        if look:
            found = _found(gateway.list_transfers(transfer_group=group), account.account_id)
            if found is not None:
                return Done(transfer_seen(payout, found, by="found at the provider"))
            _looked(entry)
        if "charge" not in entry.payload:
            intent = order.payment_intent_id
            charge = gateway.payment_charge(intent) if intent else None
            _save(entry, {**entry.payload, "charge": charge})
    except GatewayError as exc:
        return Retry(
            f"no answer: {_why(exc)}" if not exc.answered else f"refused a read: {_why(exc)}"
        )
    try:
        transfer = gateway.create_transfer(
            TransferRequest(
                amount_minor=to_minor_units(amount, payout.currency),
                currency=payout.currency,
                destination=account.account_id,
                transfer_group=group,
                source_transaction=entry.payload.get("charge"),
                order_id=str(order.pk),
                idempotency_key=key,
            )
        )
    except GatewayError as exc:
        if exc.answered:
            _refused(entry)
            return Retry(f"refused: {_why(exc)}")
        return Retry(f"no answer: {_why(exc)}")
    return Done(transfer_seen(payout, transfer, by="made"))


def _found(transfers: tuple[ProviderTransfer, ...], destination: str) -> ProviderTransfer | None:
    return next((t for t in transfers if t.destination == destination), None)


def _released_without_transfer(payout: Payout) -> str:
    """A frozen amount of 0 (a debt recovered whole, or a fee equal to the total) sends
    nothing: the payout is released as it is."""
    with transaction.atomic():
        payout = locked(payout.pk)
        if payout.status in (PayoutStatus.DUE, PayoutStatus.FAILED):
            payout.status = PayoutStatus.RELEASED
            payout.released_at = timezone.now()
            payout.save()
    return "nothing to send (0): released"


def release_gave_up(entry: OutboxEntry, error: str) -> None:
    """The release failed for good: the payout is flagged (staff release it again)."""
    payout = _payout_of(entry)
    if payout is None:
        return
    Payout.objects.filter(pk=payout.pk, status=PayoutStatus.DUE).update(
        status=PayoutStatus.FAILED,
        needs_attention=True,
        note=f"the release failed: {error}"[:2000],
        updated_at=timezone.now(),
    )
    logger.error("payout of order %s: the release failed for good: %s", payout.order_id, error)


# --- payout_reversal ----------------------------------------------------------------------------


def reverse(entry: OutboxEntry) -> Outcome:
    payout = _payout_of(entry)
    if payout is None:
        return Failed("no payout for this order")
    amount = Decimal(entry.payload["amount"])
    transfer_id = entry.payload["transfer_id"]
    gateway = get_gateway()
    key, look = _key(entry)
    try:
        if look:
            listed = gateway.list_transfers(transfer_group=transfer_group(payout.order_id))
            for transfer in listed:
                for reversal in transfer.reversals if transfer.id == transfer_id else ():
                    reversal_seen(payout, reversal)
            if Payout.objects.get(pk=payout.pk).reversal_due < amount:
                return Done("the reversal was found made at the provider")
            _looked(entry)
    except GatewayError as exc:
        return Retry(f"could not look at the transfer first: {_why(exc)}")
    try:
        reversal = gateway.reverse_transfer(
            ReversalRequest(
                transfer_id=transfer_id,
                amount_minor=to_minor_units(amount, payout.currency),
                order_id=str(payout.order_id),
                idempotency_key=key,
            )
        )
    except GatewayError as exc:
        if exc.answered:
            return Done(_debt(payout, amount, _why(exc)))
        return Retry(f"no answer: {_why(exc)}")
    return Done(reversal_seen(payout, reversal))


def _debt(payout: Payout, amount: Decimal, why: str) -> str:
    """The provider refused the reversal (the vendor's balance too low, say): the refund stands,
    and what was not taken back is the vendor's debt, recovered from their next releases."""
    with transaction.atomic():
        payout = locked(payout.pk)
        taken = min(payout.reversal_due, amount)
        payout.reversal_due -= taken
        payout.debt += taken
        payout.status = payout_status_after_reversal(payout)
        payout.needs_attention = True
        payout.note = f"reversal of {amount} refused: {why}; the vendor owes it"[:2000]
        payout.save()
    logger.error(
        "payout of order %s: %s",
        payout.order_id,
        payout.note,
        extra={"event": "payout.debt", "order_id": payout.order_id, "vendor_id": payout.vendor_id},
    )
    return f"refused: a debt of {taken}"


def reversal_gave_up(entry: OutboxEntry, error: str) -> None:
    payout = _payout_of(entry)
    if payout is not None:
        _debt(payout, Decimal(entry.payload["amount"]), error)


def register_kinds() -> None:
    register(Kind(name=RELEASE, handle=one_at_a_time(release), on_give_up=release_gave_up))
    register(Kind(name=REVERSAL, handle=one_at_a_time(reverse), on_give_up=reversal_gave_up))
