"""The ``marketlink`` operator command (Typer).

Commands that touch data need the host's Django settings: pass ``--settings`` (or set
``DJANGO_SETTINGS_MODULE``) and run it where the host's modules are importable, as with
``django-admin``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Annotated, TypeVar

import typer

from marketlink import __version__

app = typer.Typer(
    name="marketlink",
    help="Operate a marketlink marketplace: demo data, configuration checks, payment events, "
    "reconciliation with the payment provider, reservation expiry.",
    no_args_is_help=True,
    add_completion=False,
)
events_app = typer.Typer(
    help="Stored payment events: list them, replay them.", no_args_is_help=True
)
orders_app = typer.Typer(help="Orders: expire lapsed reservations.", no_args_is_help=True)
app.add_typer(events_app, name="events")
app.add_typer(orders_app, name="orders")

T = TypeVar("T")
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]


class _RollBack(Exception):
    """Carries a dry run's result out of the transaction it rolls back."""


def run_maybe_dry(dry_run: bool, action: Callable[[], T]) -> T:
    """Run ``action``; on a dry run, inside a transaction that is rolled back afterwards (with
    the tasks it would have enqueued on commit)."""
    if not dry_run:
        return action()
    from django.db import transaction

    try:
        with transaction.atomic():
            raise _RollBack(action())
    except _RollBack as rolled_back:
        return rolled_back.args[0]  # type: ignore[no-any-return]


@app.callback()
def main(
    settings: Annotated[
        str | None,
        typer.Option(help="Django settings module of the host site (else DJANGO_SETTINGS_MODULE)."),
    ] = None,
    pythonpath: Annotated[
        str | None, typer.Option(help="A directory to add to the Python path, as django-admin's.")
    ] = None,
) -> None:
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    if pythonpath:
        sys.path.insert(0, pythonpath)


def setup_django() -> None:
    """Configure Django from the host's settings, or stop with an explanation."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        typer.echo(
            "No Django settings: pass --settings mysite.settings or set DJANGO_SETTINGS_MODULE.",
            err=True,
        )
        raise typer.Exit(2)
    sys.path.insert(0, os.getcwd())
    import django

    django.setup()


@app.command()
def version() -> None:
    """Print marketlink's version."""
    typer.echo(__version__)


@app.command()
def check() -> None:
    """Run Django's system checks, marketlink's included; exit 1 on errors."""
    setup_django()
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    try:
        call_command("check")
    except SystemCheckError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


@app.command()
def seed(
    vendors: Annotated[int, typer.Option(min=1, max=1000, help="How many vendors to create.")] = 3,
    password: Annotated[str, typer.Option(help="Password of every demo user.")] = "demo-pass-123",
) -> None:
    """Create demo vendors, services, variants and a customer (idempotent: reruns add nothing)."""
    setup_django()
    from marketlink.seeding import seed_demo

    summary = seed_demo(vendors=vendors, password=password)
    for line in summary:
        typer.echo(line)


@events_app.command("list")
def events_list(
    status: Annotated[
        str | None, typer.Option(help="received, processed, failed or ignored.")
    ] = None,
    attention: Annotated[bool, typer.Option(help="Only events flagged for staff.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
) -> None:
    """List stored payment events, newest first."""
    setup_django()
    from marketlink.payments.models import PaymentEvent

    events = PaymentEvent.objects.all()
    if status:
        events = events.filter(status=status)
    if attention:
        events = events.filter(needs_attention=True)
    for event in events[:limit]:
        flag = "!" if event.needs_attention else " "
        typer.echo(
            f"{flag} {event.created_at:%Y-%m-%d %H:%M:%S} {event.event_id:<32} "
            f"{event.event_type:<40} {event.status:<9} attempts={event.attempts} "
            f"order={event.order_id or '-'} {event.last_error or event.result}"
        )


@events_app.command("replay")
def events_replay(
    event_ids: Annotated[list[str] | None, typer.Argument(help="Provider event ids.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed event.")] = False,
    force: Annotated[
        bool, typer.Option(help="Also events already processed (handlers are idempotent).")
    ] = False,
    dry_run: DryRun = False,
) -> None:
    """Process stored events again, e.g. after fixing what made them fail."""
    setup_django()
    from marketlink.exceptions import MarketlinkError
    from marketlink.orders.models import ChangeSource
    from marketlink.payments.models import EventStatus, PaymentEvent
    from marketlink.payments.webhooks import event_process

    events = PaymentEvent.objects.filter(event_id__in=event_ids or [])
    if failed:
        events = events | PaymentEvent.objects.filter(status=EventStatus.FAILED)
    chosen = list(events.order_by("created_at"))
    if not chosen:
        typer.echo("No such events.", err=True)
        raise typer.Exit(1)
    problems = 0
    for event in chosen:
        try:
            result = run_maybe_dry(
                dry_run,
                partial(event_process, record_id=event.pk, source=ChangeSource.CLI, force=force),
            )
        except MarketlinkError as exc:
            problems += 1
            typer.echo(f"{event.event_id}: {exc.message}")
            continue
        prefix = "would be " if dry_run else ""
        typer.echo(
            f"{event.event_id}: {prefix}{result.status}: {result.last_error or result.result}"
        )
    raise typer.Exit(1 if problems else 0)


@orders_app.command("expire")
def orders_expire_command(dry_run: DryRun = False) -> None:
    """Cancel pending orders whose reservation lapsed and return their stock now."""
    setup_django()
    from marketlink.orders.models import ChangeSource
    from marketlink.orders.services import orders_expire

    count = run_maybe_dry(dry_run, lambda: orders_expire(source=ChangeSource.CLI))
    typer.echo(f"{'Would expire' if dry_run else 'Expired'} {count} reservation(s).")


@app.command()
def reconcile(
    dry_run: DryRun = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many orders.")] = 500,
    days: Annotated[
        int, typer.Option(min=0, help="How far back to look at cancelled and failed orders.")
    ] = 2,
) -> None:
    """Ask the payment provider about unpaid orders' checkouts (pending, or cancelled or failed
    in the last --days) and apply what a lost webhook would have (paid, or expired)."""
    setup_django()
    from datetime import timedelta

    from django.db.models import Q
    from django.utils import timezone

    from marketlink.exceptions import MarketlinkError
    from marketlink.orders.models import RepairOrder
    from marketlink.payments.reconcile import RECONCILED_STATUSES, order_reconcile
    from marketlink.payments.rules import RELEASED_STATUSES

    recently = timezone.now() - timedelta(days=days)
    pending = (
        RepairOrder.objects.filter(
            status__in=RECONCILED_STATUSES, checkout_session_id__isnull=False
        )
        .filter(~Q(status__in=RELEASED_STATUSES) | Q(updated_at__gte=recently))
        .order_by("created_at")[:limit]
    )
    for order in pending:
        try:
            outcome = run_maybe_dry(dry_run, partial(order_reconcile, order=order))
        except MarketlinkError as exc:
            outcome = f"could not ask the provider: {exc.message}"
        typer.echo(f"{order.id}: {'(dry run) ' if dry_run else ''}{outcome}")
