"""The ``marketlink`` operator command (Typer): this module assembles it; each command's code lives
in ``marketlink.operations`` (whose docstring states the contract every command keeps).

Commands that touch data need the host's Django settings: pass ``--settings`` (or set
``DJANGO_SETTINGS_MODULE``) and run it where the host's modules are importable, as with
``django-admin``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from marketlink import __version__
from marketlink.operations.doctor import doctor
from marketlink.operations.invoices import invoices_app
from marketlink.operations.orders import orders_app
from marketlink.operations.outbox import outbox_app
from marketlink.operations.payouts import payouts_app
from marketlink.operations.reconcile import reconcile
from marketlink.operations.runner import setup_django
from marketlink.operations.seed import seed
from marketlink.operations.webhooks import webhooks_app

app = typer.Typer(
    name="marketlink",
    help="Operate a marketlink marketplace: demo data, health of the installation, payment "
    "events and their replay, reconciliation with the payment provider, invoices, reservations, "
    "payouts to vendors. "
    "Exit codes: 0 all well, 1 needs a person, 2 usage or configuration, 3 a dependency down.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(webhooks_app, name="events", help="Alias of `webhooks`.", hidden=True)
app.add_typer(orders_app, name="orders")
app.add_typer(invoices_app, name="invoices")
app.add_typer(outbox_app, name="outbox")
app.add_typer(payouts_app, name="payouts")
app.command()(reconcile)
app.command()(doctor)
app.command()(seed)


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


@app.command()
def version() -> None:
    """Print marketlink's version."""
    typer.echo(__version__)


@app.command()
def check() -> None:
    """Run Django's system checks, marketlink's included; exit 2 on errors (configuration)."""
    setup_django()
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    try:
        call_command("check")
    except SystemCheckError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
