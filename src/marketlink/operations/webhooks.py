"""``marketlink webhooks list|replay`` (``events`` is an alias): the payment events we stored,
and processing them again through the same pipeline a delivery goes through."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, Since, acting_as
from marketlink.operations.provider_events import COLUMNS, replay_from_provider
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import (
    escalate_failure,
    operation,
    run_maybe_dry,
    setup_django,
)
from marketlink.operations.since import parse_since

webhooks_app = typer.Typer(
    help="Payment events: list what we stored, replay stored or provider-side events.",
    no_args_is_help=True,
)

# The table's; each item (the JSON document) also names a Connect event's ``account``.
LIST_COLUMNS = ("event_id", "type", "status", "attempts", "order", "attention", "created", "detail")


def _event_item(event: Any) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "type": event.event_type,
        "status": event.status,
        "attempts": event.attempts,
        "order": str(event.order_id) if event.order_id else None,
        # A connected account's event (Connect) names its account.
        "account": event.account or None,
        "attention": event.needs_attention,
        "created": event.created_at.isoformat(timespec="seconds"),
        "detail": event.last_error or event.result,
    }


@webhooks_app.command("list")
def webhooks_list(
    status: Annotated[
        str | None, typer.Option(help="received, processed, failed or ignored.")
    ] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="A provider event type, e.g. charge.refunded.")
    ] = None,
    since: Since = None,
    order: Annotated[str | None, typer.Option(help="Only the events of this order id.")] = None,
    attention: Annotated[
        bool, typer.Option("--attention", help="Only events flagged for a person.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    as_json: Json = False,
) -> None:
    """List stored payment events, newest first. Exit 1 when any listed event needs attention
    or the --limit cut the list short."""
    setup_django()
    from marketlink.payments.models import EventStatus, PaymentEvent

    if status and status not in EventStatus.values:
        raise typer.BadParameter(f"one of {', '.join(EventStatus.values)}", param_hint="--status")
    events = PaymentEvent.objects.defer("payload").order_by("-created_at")
    if status:
        events = events.filter(status=status)
    if event_type:
        events = events.filter(event_type=event_type)
    if since:
        events = events.filter(created_at__gte=parse_since(since))
    if order:
        events = events.filter(order_id=_uuid(order, "--order"))
    if attention:
        events = events.filter(needs_attention=True)
    report = Report(title="Payment events", columns=LIST_COLUMNS)
    with operation(report, as_json=as_json):
        chosen = list(events[: limit + 1])
        for event in chosen[:limit]:
            report.add(**_event_item(event))
            report.count("listed")
            if event.needs_attention:
                report.count("needing_attention")
        report.summary.setdefault("listed", 0)
        report.summary.setdefault("needing_attention", 0)
        if report.summary["needing_attention"]:
            report.needs_attention("some events need a person: see docs/operations.md")
        if len(chosen) > limit:
            report.summary["limit_reached"] = limit
            report.needs_attention(f"--limit {limit} reached: more events match")


@webhooks_app.command("replay")
def webhooks_replay(
    event_ids: Annotated[
        list[str] | None, typer.Argument(help="Provider event ids to replay.", show_default=False)
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed stored event.")] = False,
    since: Since = None,
    force: Annotated[
        bool, typer.Option(help="Also events already processed (the handlers are idempotent).")
    ] = False,
    from_stripe: Annotated[
        bool,
        typer.Option(
            "--from-stripe",
            help="Fetch the provider's events (default --since 24h, at most 30 days back) and "
            "store and process those we never stored.",
        ),
    ] = False,
    event_types: Annotated[
        list[str] | None,
        typer.Option("--type", help="With --from-stripe: only this event type (repeatable)."),
    ] = None,
    undelivered_only: Annotated[
        bool,
        typer.Option(
            "--undelivered-only",
            help="With --from-stripe: only events the provider never got a 2xx for.",
        ),
    ] = False,
    dry_run: DryRun = False,
    as_json: Json = False,
    operator: OperatorAs = None,
) -> None:
    """Process stored events again, e.g. after fixing what made them fail; or, with
    --from-stripe, fetch back events whose deliveries were lost. Events already processed (or,
    from the provider, already stored) are skipped unless --force, so a second run changes
    nothing."""
    if from_stripe:
        if event_ids or failed:
            raise typer.BadParameter("--from-stripe takes no EVENT_IDs and no --failed")
        setup_django()
        report = Report(title="Events from the provider", columns=COLUMNS, dry_run=dry_run)
        with operation(report, as_json=as_json), acting_as(operator):
            replay_from_provider(
                report,
                since=parse_since(since or "24h"),
                types=event_types or [],
                undelivered_only=undelivered_only,
                force=force,
                dry_run=dry_run,
                as_json=as_json,
            )
        return
    if event_types or undelivered_only:
        raise typer.BadParameter("--type and --undelivered-only go with --from-stripe")
    if not (event_ids or failed or since):
        raise typer.BadParameter("name EVENT_IDs, or choose --failed, --since or --from-stripe")
    setup_django()
    from marketlink.payments.models import EventStatus, PaymentEvent

    events = PaymentEvent.objects.defer("payload").order_by("created_at")
    chosen_by = PaymentEvent.objects.none()
    if event_ids:
        chosen_by = chosen_by | PaymentEvent.objects.filter(event_id__in=event_ids)
    if failed:
        chosen_by = chosen_by | PaymentEvent.objects.filter(status=EventStatus.FAILED)
    if since and not (event_ids or failed):
        chosen_by = PaymentEvent.objects.exclude(status=EventStatus.PROCESSED)
    events = events.filter(pk__in=chosen_by.values("pk"))
    if since:
        events = events.filter(created_at__gte=parse_since(since))
    report = Report(title="Replayed events", columns=COLUMNS, dry_run=dry_run)
    with operation(report, as_json=as_json), acting_as(operator):
        chosen = list(events)
        missing = sorted(set(event_ids or []) - {event.event_id for event in chosen})
        for event_id in missing:
            report.add(event_id=event_id, before="not stored", after="not stored", detail="")
            report.needs_attention("some named events are not stored (see --from-stripe)")
        say(
            f"{'Dry run: would replay' if dry_run else 'Replaying'} {len(chosen)} event(s)"
            f"{' (processed ones too: --force)' if force else ''}.",
            as_json=as_json,
        )

        def replay_all() -> None:
            for event in progress(chosen, total=len(chosen), description="replaying"):
                _replay_one(report, event, force=force)

        # One rollback at the end of a dry run, so each event meets what the ones before it did.
        run_maybe_dry(dry_run, replay_all)
        for key in ("replayed", "already_processed", "failed", "not_stored"):
            report.summary.setdefault(key, 0)
        report.summary["not_stored"] = len(missing)


def _replay_one(report: Report, event: Any, *, force: bool) -> None:
    from marketlink.exceptions import MarketlinkError
    from marketlink.orders.models import ChangeSource
    from marketlink.payments.models import EventStatus
    from marketlink.payments.webhooks import event_process

    before = event.status
    if before == EventStatus.PROCESSED and not force:
        report.count("already_processed")
        report.add(**_replay_item(event, before, before, "already processed; --force to redo"))
        return
    try:
        result = event_process(record_id=event.pk, source=ChangeSource.CLI, force=force)
    except MarketlinkError as exc:
        report.count("failed")
        report.add(**_replay_item(event, before, EventStatus.FAILED, exc.message))
        escalate_failure(report, exc, "some events failed again: fix the cause, replay later")
        return
    report.count("failed" if result.status == EventStatus.FAILED else "replayed")
    if result.status == EventStatus.FAILED:
        report.needs_attention("some events failed again: fix the cause, replay later")
    report.add(**_replay_item(event, before, result.status, result.last_error or result.result))


def _replay_item(event: Any, before: str, after: str, detail: str) -> dict[str, Any]:
    order = str(event.order_id) if event.order_id else None
    return {
        "event_id": event.event_id,
        "type": event.event_type,
        "order": order,
        "before": before,
        "after": after,
        "detail": detail,
    }


def _uuid(value: str, option: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an order id", param_hint=option) from None
