"""What provider events do to payouts: registered with payments' pipeline
(``payments.event_hooks``) in ``PayoutsConfig.ready()``, so each runs inside its stored event's
transaction, once, replayable, as payments' own handlers do.

A connected account's events are read as a prompt to ask: events come late, twice and out of
order, so the account is read from the provider before the event is processed, and its state
now is what is recorded (two ``account.updated`` in the wrong order cannot leave a stale gate).
"""

from __future__ import annotations

import dataclasses

from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import GatewayError, ProviderEvent
from marketlink.payouts.accounts import account_deauthorized, account_record


def with_fresh_account(event: ProviderEvent) -> ProviderEvent:
    """The event with its account as the provider says it now. A provider that does not answer
    fails the event (503, delivered again); one that refuses (an account no longer ours to
    read) leaves the event as it came."""
    if not event.account:
        return event
    try:
        state = get_gateway().fetch_account(event.account)
    except GatewayError as exc:
        if not exc.answered:
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
