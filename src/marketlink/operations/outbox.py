"""``marketlink outbox list|retry``: what marketlink still owes after a state change (an
invoice, closing a checkout, a refund, a transfer) and what failed for good; and running such
entries again, now, in this process, so a consumer that is down stops nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, acting_as
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, setup_django

outbox_app = typer.Typer(
    help="The outbox: side effects owed (invoices, refunds, transfers), and running them again.",
    no_args_is_help=True,
)

COLUMNS = ("entry", "kind", "subject", "status", "attempts", "due", "detail")
Kinds = Annotated[
    list[str] | None, typer.Option("--kind", help="Only entries of this kind (repeatable).")
]
Statuses = Annotated[
    list[str] | None,
    typer.Option("--status", help="pending, running, done or failed (repeatable)."),
]
Limit = Annotated[int, typer.Option(min=1, help="At most this many entries.")]


def _chosen(kinds: list[str] | None, statuses: list[str] | None, *, default: list[str]) -> Any:
    from marketlink.outbox.models import EntryStatus
    from marketlink.outbox.selectors import entries_listed

    wrong = sorted(set(statuses or ()) - set(EntryStatus.values))
    if wrong:
        raise typer.BadParameter(f"no such status: {', '.join(wrong)}", param_hint="--status")
    return entries_listed(kinds=kinds, statuses=statuses or default)


def _to_run_again(kinds: list[str] | None, statuses: list[str] | None) -> Any:
    """``--status`` as given; by default the failed entries and those due now (not those waiting
    for a retry, nor those owed for later, such as a demo's held invoice)."""
    from django.db.models import Q
    from django.utils import timezone

    from marketlink.outbox.drainer import due

    chosen = _chosen(kinds, statuses, default=["failed", "pending"])
    if statuses:
        return chosen
    return chosen.filter(Q(status="failed") | due(timezone.now()))


def _row(entry: Any) -> dict[str, Any]:
    return {
        "entry": str(entry.pk),
        "kind": entry.kind,
        "subject": entry.subject_id,
        "status": entry.status,
        "attempts": entry.attempts,
        "due": entry.due_at.isoformat(timespec="seconds"),
        "detail": entry.last_error or entry.result,
    }


@outbox_app.command("list")
def outbox_list(
    kind: Kinds = None, status: Statuses = None, limit: Limit = 100, as_json: Json = False
) -> None:
    """Entries newest first (by default the ones not done: pending, running and failed). Exit 1
    when a listed entry failed for good or is overdue (no drainer runs it)."""
    setup_django()
    from marketlink.outbox.selectors import OVERDUE_AFTER, entries_overdue

    report = Report(title="Outbox entries", columns=COLUMNS)
    with operation(report, as_json=as_json):
        entries = _chosen(kind, status, default=["pending", "running", "failed"])
        overdue = set(entries_overdue(by=OVERDUE_AFTER).values_list("pk", flat=True))
        report.summary["listed"] = 0
        for entry in entries[:limit]:
            report.add(**_row(entry))
            report.count("listed")
            if entry.status == "failed":
                report.needs_attention("failed entries need a person: see their detail")
            elif entry.pk in overdue:
                report.needs_attention(
                    "entries are overdue: is a Huey consumer with its scheduler running? "
                    "`marketlink outbox retry` runs them here meanwhile"
                )
        if entries.count() > limit:
            report.needs_attention(f"--limit {limit} reached: more entries to list")


@outbox_app.command("retry")
def outbox_retry_command(
    kind: Kinds = None,
    status: Statuses = None,
    limit: Limit = 1000,
    dry_run: DryRun = False,
    as_json: Json = False,
    operator: OperatorAs = None,
) -> None:
    """Run failed and waiting entries again, now, in this process (by default the failed ones
    and those due; --status pending: every pending one, those waiting for a retry too). Exit 1
    when one fails again."""
    setup_django()
    from marketlink.outbox.drainer import drain
    from marketlink.outbox.models import OutboxEntry
    from marketlink.outbox.services import outbox_retry

    report = Report(title="Outbox entries run again", columns=COLUMNS, dry_run=dry_run)
    with operation(report, as_json=as_json), acting_as(operator):
        chosen = list(_to_run_again(kind, status)[:limit])
        say(
            f"{'Dry run: would run' if dry_run else 'Running'} {len(chosen)} entr(ies) again.",
            as_json=as_json,
        )
        if dry_run:
            # Running one would send its email or move its money: a rollback cannot take that
            # back, so a dry run only says what would run.
            for entry in chosen:
                report.add(**_row(entry))
            return
        ids = [entry.pk for entry in chosen]
        outbox_retry(ids=ids, wake=False)
        for outcome, number in drain(only=ids).items():
            report.count(outcome, number)
        fresh = {entry.pk: entry for entry in OutboxEntry.objects.filter(pk__in=ids)}
        for entry in progress(chosen, total=len(chosen), description="entries"):
            now = fresh.get(entry.pk, entry)
            report.add(**_row(now))
            if now.status != "done":
                report.needs_attention("some entries are still not done: see their detail")
