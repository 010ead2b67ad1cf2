"""``marketlink seed``: deterministic demo data for a fresh site (logic: ``marketlink.seeding``)."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from marketlink.operations.options import Json
from marketlink.operations.report import Report, say
from marketlink.operations.runner import operation, setup_django


def seed(
    seed: Annotated[int, typer.Option(help="Same seed, same names, prices and stocks.")] = 1,
    vendors: Annotated[int, typer.Option(min=1, max=1000, help="How many vendors.")] = 3,
    customers: Annotated[int, typer.Option(min=1, max=1000, help="How many customers.")] = 3,
    orders: Annotated[
        int, typer.Option(min=0, max=1000, help="How many orders, cycling through every status.")
    ] = 14,
    password: Annotated[str, typer.Option(help="Password of every demo user.")] = "demo-pass-123",
    as_json: Json = False,
) -> None:
    """Create demo vendors (with profiles, services, variants), customers and orders in every
    status, through the real services and the dummy gateway. Reruns add nothing; the logins are
    printed every time."""
    setup_django()
    from django.core.exceptions import ImproperlyConfigured

    from marketlink.seeding import seed_demo

    report = Report(title="Demo logins", columns=("role", "email", "password", "name"))
    with operation(report, as_json=as_json):
        say(
            f"Seeding (seed {seed}): {vendors} vendor(s), {customers} customer(s), {orders} "
            "order(s); what exists already is kept.",
            as_json=as_json,
        )
        try:
            # The demo's invoices are emailed while seeding: the console mail backend would
            # print them into stdout, which holds only the report (or the JSON document).
            with contextlib.redirect_stdout(sys.stderr):
                result = seed_demo(
                    seed=seed,
                    vendors=vendors,
                    customers=customers,
                    orders=orders,
                    password=password,
                )
        except ImproperlyConfigured as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        for login in result.logins:
            report.add(role=login.role, email=login.email, password=login.password, name=login.name)
        report.summary.update({f"{kind}_created": n for kind, n in result.created.items()})
