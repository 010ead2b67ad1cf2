"""``marketlink reconcile``: ask the payment provider about orders a lost webhook may have left
wrong, and apply what the webhook would have."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated

import typer

from marketlink.operations.options import DryRun, Json
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, run_maybe_dry, setup_django


def reconcile(
    dry_run: DryRun = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many orders.")] = 500,
    days: Annotated[
        int, typer.Option(min=0, help="How far back to look at cancelled and failed orders.")
    ] = 2,
    as_json: Json = False,
) -> None:
    """Ask the payment provider about unpaid orders' checkouts (pending, or cancelled or failed
    in the last --days) and apply what a lost webhook would have (paid, or expired)."""
    setup_django()
    from django.db.models import Q
    from django.utils import timezone

    from marketlink.exceptions import MarketlinkError
    from marketlink.orders.models import RepairOrder
    from marketlink.payments.reconcile import RECONCILED_STATUSES, order_reconcile
    from marketlink.payments.rules import RELEASED_STATUSES

    recently = timezone.now() - timedelta(days=days)
    orders = (
        RepairOrder.objects.filter(
            status__in=RECONCILED_STATUSES, checkout_session_id__isnull=False
        )
        .filter(~Q(status__in=RELEASED_STATUSES) | Q(updated_at__gte=recently))
        .order_by("-created_at")
    )
    report = Report(
        title="Reconciled orders", columns=("order", "status", "outcome"), dry_run=dry_run
    )
    with operation(report, as_json=as_json):
        chosen = list(orders[: limit + 1])
        say(f"Asking the provider about {min(len(chosen), limit)} order(s).", as_json=as_json)
        for order in progress(chosen[:limit], total=min(len(chosen), limit), description="orders"):
            try:
                outcome = run_maybe_dry(dry_run, partial(order_reconcile, order=order))
            except MarketlinkError as exc:
                outcome = f"could not ask the provider: {exc.message}"
                report.unreachable(outcome)
            report.count("checked")
            report.add(order=str(order.id), status=order.status, outcome=outcome)
        report.summary.setdefault("checked", 0)
        if len(chosen) > limit:
            report.summary["limit_reached"] = limit
            report.needs_attention(f"--limit {limit} reached: more orders to check")
