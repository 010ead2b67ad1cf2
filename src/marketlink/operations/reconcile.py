"""``marketlink reconcile``: ask the payment provider about every order a lost webhook may have
left wrong, apply what the webhook would have, and send the invoices and refunds nothing sent."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from itertools import chain
from typing import Annotated, Any

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, acting_as
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, run_maybe_dry, setup_django
from marketlink.operations.since import parse_since

COLUMNS = ("order", "check", "kind", "before", "after", "outcome")
KIND_COLUMNS = ("found", "fixed", "needs_attention")


def reconcile(
    since: Annotated[
        str,
        typer.Option(
            help="How far back to look at cancelled, failed and paid orders: 30m, 24h, 2d or "
            "an ISO 8601 time. Pending orders and unsent invoices are checked whatever their age."
        ),
    ] = "2d",
    limit: Annotated[
        int, typer.Option(min=1, help="At most this many orders per check; reaching it exits 1.")
    ] = 1000,
    dry_run: DryRun = False,
    as_json: Json = False,
    operator: OperatorAs = None,
) -> None:
    """Check pending orders (newest first), cancelled and failed ones with a checkout, paid ones
    against refunds at the provider, and invoices not sent past the grace period; fix what
    differs as the lost webhook would have. With payouts on, also the provider's transfers of
    released orders (one the ledger lacks is recorded, never made again) and gated vendors'
    accounts. Exit 1 when something needs a person or --limit was reached, 3 when the
    provider could not be asked."""
    setup_django()
    from marketlink.orders.models import ChangeSource
    from marketlink.payments.reconcile import Kind, LimitReached, reconcile_orders, reconcile_plan

    payouts = _payouts_check()

    moment = parse_since(since)
    report = Report(
        title="Orders that differed",
        columns=COLUMNS,
        dry_run=dry_run,
        kind_columns=KIND_COLUMNS,
    )
    with operation(report, as_json=as_json), acting_as(operator):
        for kind in Kind:
            report.tally(kind)
        for key in ("checked", "fixed", "needing_attention", "could_not_check"):
            report.summary[key] = 0
        report.summary["since"] = moment.isoformat(timespec="seconds")
        plan = reconcile_plan(since=moment)
        if payouts is not None:
            for kind in payouts.Kind:
                report.tally(kind)
            plan |= {f"payout {name}": n for name, n in payouts.payouts_plan(since=moment).items()}
        counted = ", ".join(f"{min(n, limit)} {check}" for check, n in plan.items())
        say(
            f"{'Dry run: checking' if dry_run else 'Checking'} orders ({counted}); "
            f"{'nothing will change' if dry_run else 'fixing what differs'}.",
            as_json=as_json,
        )
        run = partial(run_maybe_dry, dry_run)
        outcomes: Iterable[Any] = reconcile_orders(
            since=moment, limit=limit, source=ChangeSource.CLI, run=run
        )
        if payouts is not None:
            outcomes = chain(
                outcomes, payouts.payouts_reconcile(since=moment, limit=limit, run=run)
            )
        total = sum(min(n, limit) for n in plan.values())
        for outcome in progress(outcomes, total=total, description="checking orders"):
            if isinstance(outcome, LimitReached):
                report.summary.setdefault("limit_reached", []).append(outcome.check)
                report.needs_attention(f"--limit {limit} reached: more orders to check")
            else:
                _record(report, outcome)


def _payouts_check() -> Any:
    """Payouts' own check, where its app is installed (a host without it has none)."""
    from django.apps import apps

    if not apps.is_installed("marketlink.payouts"):
        return None
    from marketlink.payouts import reconcile as payouts

    return payouts


def _record(report: Report, outcome: Any) -> None:
    from marketlink.payments.reconcile import Result

    report.count("checked")
    if outcome.result == Result.AGREES:
        return
    report.add(
        order=str(outcome.order_id),
        check=outcome.check,
        kind=outcome.kind,
        before=outcome.before,
        after=outcome.after,
        outcome=outcome.detail,
        result=outcome.result,
    )
    if outcome.result == Result.NOT_CHECKED:
        report.count("could_not_check")
        report.unreachable("the payment provider could not be asked: run again when it answers")
    elif outcome.result == Result.FIXED:
        report.count("fixed")
        report.tally(outcome.kind, "found", "fixed")
    else:
        report.count("needing_attention")
        report.tally(outcome.kind, "found", "needs_attention")
        report.needs_attention("some orders need a person: see their outcome")
