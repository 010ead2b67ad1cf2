"""The ``marketlink`` operator command (Typer).

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

app = typer.Typer(
    name="marketlink",
    help="Operate a marketlink marketplace: seed demo data, check configuration.",
    no_args_is_help=True,
    add_completion=False,
)


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
