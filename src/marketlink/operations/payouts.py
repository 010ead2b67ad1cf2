"""``marketlink payouts list|release``: vendors' payouts, and releasing the ones owed now (in
the command itself, through their outbox rows: a consumer that is down stops nothing). A dry run
never writes to the provider: it reads, and says what it would send."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, acting_as
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, setup_django

payouts_app = typer.Typer(
    help="Payouts to vendors: list them, release the ones owed.", no_args_is_help=True
)

LIST_COLUMNS = ("order", "vendor", "status", "amount", "transfer", "attention", "note")
RELEASE_COLUMNS = ("order", "before", "after", "amount", "transfer", "outcome")


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a {what} id") from None


@payouts_app.command("list")
def payouts_list(
    vendor: Annotated[str | None, typer.Option(help="Only this vendor's (its id).")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="held, due, released, reversed, debt, failed or cancelled."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 100,
    as_json: Json = False,
) -> None:
    """List payouts, newest first. Exit 1 when any listed one needs a person (a failed
    release, a debt, a dispute) or the --limit cut the list short."""
    vendor_id = _uuid(vendor, "vendor") if vendor else None
    setup_django()
    from marketlink.payouts.models import PayoutStatus
    from marketlink.payouts.selectors import payouts_listed

    if status is not None and status not in PayoutStatus.values:
        raise typer.BadParameter(f"status must be one of {', '.join(PayoutStatus.values)}")
    report = Report(title="Payouts", columns=LIST_COLUMNS)
    with operation(report, as_json=as_json):
        say("Listing payouts (nothing is changed).", as_json=as_json)
        payouts = payouts_listed(vendor=vendor_id, status=status)
        total = payouts.count()
        report.summary.update(listed=min(total, limit), total=total, needing_attention=0)
        for payout in payouts[:limit]:
            report.add(
                order=str(payout.order_id),
                vendor=str(payout.vendor_id),
                status=payout.status,
                amount=str(payout.amount if payout.amount is not None else payout.share),
                transfer=payout.transfer_id,
                attention=payout.needs_attention,
                note=payout.note[:200],
            )
            if payout.needs_attention:
                report.count("needing_attention")
                report.needs_attention("some payouts need a person: see their note")
        if total > limit:
            report.needs_attention(f"--limit {limit} reached: {total} payouts in all")


@payouts_app.command("release")
def payouts_release(
    order_ids: Annotated[
        list[str] | None,
        typer.Argument(help="The orders whose payout to release.", show_default=False),
    ] = None,
    due: Annotated[
        bool,
        typer.Option("--due", help="Every release that should have happened and did not."),
    ] = False,
    dry_run: DryRun = False,
    as_json: Json = False,
    operator: OperatorAs = None,
) -> None:
    """Release payouts now: named orders', or (--due) every one owed and not made (a lost task,
    the provider down). Each is one transfer, ever: a release already made is recorded, never
    made again. Exit 1 when one could not be released, 3 when the provider did not answer."""
    if bool(order_ids) == due:
        raise typer.BadParameter("name ORDER_IDs, or choose --due (not both)")
    wanted = [_uuid(value, "order") for value in order_ids or []]
    setup_django()
    from marketlink.payouts.models import Payout
    from marketlink.payouts.operator import releases_due, releases_make, releases_plan

    report = Report(title="Payouts released", columns=RELEASE_COLUMNS, dry_run=dry_run)
    with operation(report, as_json=as_json), acting_as(operator):
        payouts = list(
            releases_due()
            if due
            else Payout.objects.filter(order_id__in=wanted).select_related("order")
        )
        missing = set(wanted) - {payout.order_id for payout in payouts}
        report.summary.update(
            asked=len(payouts), released=0, not_released=0, not_found=len(missing)
        )
        for order_id in sorted(map(str, missing)):
            report.add(order=order_id, outcome="no payout: not paid, or placed with payouts off")
            report.needs_attention("some orders have no payout")
        say(
            f"{'Dry run: reading' if dry_run else 'Releasing'} {len(payouts)} payout(s)"
            f"{'; nothing is sent or changed' if dry_run else ''}.",
            as_json=as_json,
        )
        outcomes = releases_plan(payouts) if dry_run else releases_make(payouts)
        for outcome in progress(outcomes, total=len(outcomes), description="releasing"):
            _record(report, outcome, dry_run)


def _record(report: Report, outcome: Any, dry_run: bool) -> None:
    report.add(
        order=str(outcome.order_id),
        before=outcome.before,
        after=outcome.after,
        amount=None if outcome.amount is None else str(outcome.amount),
        transfer=outcome.transfer_id,
        outcome=outcome.detail,
    )
    if dry_run or outcome.after == "released":
        report.count("released" if not dry_run else "would_release")
        return
    if outcome.after == "held" or outcome.detail.startswith("under way"):
        return  # not owed yet, or being released by a consumer: nothing to do
    report.count("not_released")
    if "no answer" in outcome.detail:
        report.unreachable("the payment provider did not answer: run again when it does")
    else:
        report.needs_attention("some releases were refused: see their outcome")
