"""``marketlink webhooks replay --from-stripe``: fetch back, over the provider's events API, the
events whose deliveries never reached us (endpoint down, wrong secret, a deploy that dropped the
route), and put each one we never stored through the webhook pipeline, as its delivery would
have gone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

import typer

from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import escalate_failure, run_maybe_dry

FAILED_NOTE = "some events failed: see `marketlink webhooks list --attention`"
COLUMNS = ("event_id", "type", "order", "before", "after", "detail")


def replay_from_provider(
    report: Report,
    *,
    since: datetime,
    types: Sequence[str],
    undelivered_only: bool,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Fill ``report`` with what happened to each fetched event: stored and processed now,
    already stored (skipped, or processed again with ``force``), or failed."""
    from marketlink.payments.gateways import get_gateway
    from marketlink.payments.gateways.base import EventKind, EventsOutOfReach
    from marketlink.payments.models import PaymentEvent

    gateway = get_gateway()
    unknown = [name for name in types if gateway.kind_of(name) is EventKind.OTHER]
    if unknown:
        raise typer.BadParameter(
            f"marketlink handles no event of type {', '.join(unknown)}", param_hint="--type"
        )
    kinds = {gateway.kind_of(name) for name in types} or None
    say(
        f"Asking {gateway.name} for {'undelivered ' if undelivered_only else ''}events since "
        f"{since:%Y-%m-%d %H:%M} UTC{' of type ' + ', '.join(types) if types else ''}.",
        as_json=as_json,
    )
    try:
        listed = gateway.list_events(since=since, kinds=kinds, undelivered_only=undelivered_only)
        # Oldest first: each event is applied in the order its delivery would have come.
        fetched = [event for event in listed if not types or event.parsed.provider_type in types]
    except EventsOutOfReach as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from None
    fetched.reverse()
    stored = dict(
        PaymentEvent.objects.filter(event_id__in=[event.event_id for event in fetched])
        .order_by()
        .values_list("event_id", "status")
    )
    report.summary.update(fetched=len(fetched), stored_now=0, already_stored=0, failed=0)
    say(
        f"{'Dry run: would store' if dry_run else 'Storing'} and process "
        f"{sum(event.event_id not in stored for event in fetched)} event(s) we never stored"
        f"{'; processing the stored ones again (--force)' if force else ''}.",
        as_json=as_json,
    )

    def apply_all() -> None:
        for event in progress(fetched, total=len(fetched), description="events"):
            before = stored.get(event.event_id)
            if before is not None and not force:
                report.count("already_stored")
                report.add(**_item(event, before, before, "already stored; --force to redo"))
                continue
            _apply(report, event, before)

    # A dry run rolls back once, at the end: each event then meets the state the ones before it
    # left (a refund finds the payment that came first), exactly as in the real run, where each
    # event commits on its own.
    run_maybe_dry(dry_run, apply_all)


def _apply(report: Report, event: Any, before: str | None) -> None:
    from marketlink.exceptions import MarketlinkError
    from marketlink.orders.models import ChangeSource
    from marketlink.payments.models import EventStatus
    from marketlink.payments.webhooks import event_process, fetched_event_accept

    if before is None:
        action = partial(fetched_event_accept, event.payload)
    else:
        action = partial(
            event_process, event_id=event.event_id, source=ChangeSource.CLI, force=True
        )
    try:
        record = action()
    except MarketlinkError as exc:
        report.count("failed")
        report.add(**_item(event, before, EventStatus.FAILED, exc.message))
        escalate_failure(
            report, exc, "some events failed: see `marketlink webhooks list --attention`"
        )
        return
    if record.status == EventStatus.FAILED:
        report.count("failed")
        report.needs_attention(FAILED_NOTE)
    elif before is None:
        report.count("stored_now")
    else:
        report.count("processed_again")
    report.add(**_item(event, before, record.status, record.last_error or record.result))


def _item(event: Any, before: str | None, after: str, detail: str) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.parsed.provider_type,
        "order": event.parsed.order_ref,
        "before": before or "not stored",
        "after": after,
        "detail": detail,
    }
