"""What provider events do to payouts: registered with payments' pipeline
(``payments.event_hooks``) in ``PayoutsConfig.ready()``, so each runs inside its stored event's
transaction, once, replayable, as payments' own handlers do.

A connected account's events are read as a prompt to ask: events come late, twice and out of
order, so the account is read from the provider before the event is processed, and its state
now is what is recorded (two ``account.updated`` in the wrong order cannot leave a stale gate).
"""

from __future__ import annotations

import dataclasses
import uuid

from marketlink.orders.models import RepairOrder
from marketlink.outbox.services import outbox_write
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import GatewayError, ProviderEvent
from marketlink.payments.models import Dispute, DisputeOutcome
from marketlink.payouts.accounts import account_deauthorized, account_record
from marketlink.payouts.ledger import RELEASE, release_subject, transfer_seen
from marketlink.payouts.models import Payout, PayoutStatus
from marketlink.payouts.services import payout_given_back, release_is_owed, release_owe


def with_fresh_account(event: ProviderEvent) -> ProviderEvent:
    """The event with its account as the provider says it now. A provider that does not answer
    fails the event (503, delivered again); one that refuses (an account no longer ours to
    read) leaves the event as it came."""
    if not event.account:
        return event
    try:
        state = get_gateway().fetch_account(event.account)
    except GatewayError as exc:
        if not (exc.answered or exc.no_access):
            raise
        return event
    return dataclasses.replace(event, connected_account=state)


def on_account_changed(event: ProviderEvent, source: str) -> str:
    state = event.connected_account
    if state is None:
        return "the account could not be read; nothing changed"
    account = account_record(account_id=event.account or state.id, state=state)
    if account is None:
        return f"account {event.account or state.id} is no vendor's here"
    ready = "ready: bookable" if account.ready else "not ready: not bookable"
    return f"vendor {account.vendor_id}: payouts {ready}"


def on_deauthorized(event: ProviderEvent, source: str) -> str:
    account = account_deauthorized(account_id=event.account or "")
    if account is None:
        return f"account {event.account} is no vendor's here"
    return f"vendor {account.vendor_id}: account disconnected; not bookable, flagged for staff"


# --- the platform's events about transfers, and disputes ------------------------------------------


def _payout_of_transfer(event: ProviderEvent) -> Payout | None:
    transfer = event.transfer
    if transfer is None or not transfer.order_ref:
        return None
    try:
        order_id = uuid.UUID(transfer.order_ref)
    except ValueError:
        return None
    return Payout.objects.filter(order_id=order_id).first()


def on_transfer(event: ProviderEvent, source: str) -> str:
    """A transfer's webhook (made, or reversed): recorded if the ledger lacks it (the code
    that made it died before writing it, or this event raced it)."""
    payout = _payout_of_transfer(event)
    if payout is None or event.transfer is None:
        return "not a transfer of a marketlink payout"
    return transfer_seen(payout, event.transfer, by=f"{event.provider_type} event")


def on_dispute(order: RepairOrder, event: ProviderEvent, source: str) -> str:
    """A dispute's step for payouts, after payments recorded it: an open dispute (not an
    inquiry) holds a release not made yet; lost, the vendor's sale is given back (the release
    cancelled, or the transfer reversed); won, what was held is released."""
    if not order.payouts_on or not event.dispute_id:
        return ""
    dispute = Dispute.objects.filter(provider_dispute_id=event.dispute_id).first()
    if dispute is None or dispute.provider_status.startswith("warning"):
        return "an inquiry: the payout is unchanged" if dispute else ""
    payout = Payout.objects.select_for_update().filter(order=order).first()
    if payout is None:
        return ""
    if dispute.outcome == DisputeOutcome.LOST:
        payout.needs_attention = True
        payout.save()
        disputed = dispute.provider_dispute_id
        said = payout_given_back(order, cause=f"lost-{disputed}", provider_id=disputed)
        return f"payout: dispute lost, {said}" if said else ""
    if dispute.outcome == DisputeOutcome.WON:
        return _dispute_won(payout)
    if payout.disputed:
        return ""
    if payout.status not in (PayoutStatus.HELD, PayoutStatus.DUE):
        return "payout: already released (a lost dispute reverses it)"
    payout.disputed = payout.needs_attention = True
    payout.note = f"held by dispute {dispute.provider_dispute_id} until it closes"
    payout.save()
    return "payout held while the dispute is open"


def _dispute_won(payout: Payout) -> str:
    if not payout.disputed:
        return ""
    payout.disputed = payout.needs_attention = False
    payout.note = "the dispute was won: the release goes ahead"
    said = "payout: dispute won"
    if payout.status == PayoutStatus.DUE:
        payout.holds += 1  # a release again, under its own outbox row
        outbox_write(
            kind=RELEASE,
            subject_id=release_subject(payout),
            payload={"amount": str(payout.amount)},
        )
        said += ", release owed again"
    payout.save()
    if payout.status == PayoutStatus.HELD and release_is_owed(payout.order):
        said += ", " + release_owe(payout.order)
    return said
