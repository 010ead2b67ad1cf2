"""``marketlink seed``: deterministic demo data for a fresh site."""

from __future__ import annotations

from typing import Annotated

import typer

from marketlink.operations.options import Json
from marketlink.operations.report import Report, say
from marketlink.operations.runner import operation, setup_django


def seed(
    vendors: Annotated[int, typer.Option(min=1, max=1000, help="How many vendors to create.")] = 3,
    password: Annotated[str, typer.Option(help="Password of every demo user.")] = "demo-pass-123",
    as_json: Json = False,
) -> None:
    """Create demo vendors, services, variants and a customer (idempotent: reruns add nothing)."""
    setup_django()
    from marketlink.seeding import seed_demo

    report = Report(title="Demo data", columns=("line",))
    with operation(report, as_json=as_json):
        say(f"Seeding {vendors} vendor(s) and a customer.", as_json=as_json)
        for line in seed_demo(vendors=vendors, password=password):
            report.add(line=line)
