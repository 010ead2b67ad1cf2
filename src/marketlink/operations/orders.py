"""``marketlink orders expire``: release lapsed reservations now, without waiting for the
periodic job."""

from __future__ import annotations

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, acting_as
from marketlink.operations.report import Report, say
from marketlink.operations.runner import operation, run_maybe_dry, setup_django

orders_app = typer.Typer(help="Orders: expire lapsed reservations.", no_args_is_help=True)


@orders_app.command("expire")
def orders_expire_command(
    dry_run: DryRun = False, as_json: Json = False, operator: OperatorAs = None
) -> None:
    """Cancel pending orders whose reservation lapsed and return their units. A second run finds
    none left to expire."""
    setup_django()
    from marketlink.orders.models import ChangeSource
    from marketlink.orders.services import orders_expire

    report = Report(title="Expired reservations", columns=(), dry_run=dry_run)
    with operation(report, as_json=as_json), acting_as(operator):
        say(
            "Dry run: finding lapsed reservations, changing nothing."
            if dry_run
            else "Cancelling pending orders whose reservation lapsed.",
            as_json=as_json,
        )
        report.summary["expired"] = run_maybe_dry(
            dry_run, lambda: orders_expire(source=ChangeSource.CLI)
        )
