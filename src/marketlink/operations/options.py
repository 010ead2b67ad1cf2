"""The options every command spells the same way."""

from __future__ import annotations

from typing import Annotated

import typer

Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, nothing else.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Run the real code, report what changes, change nothing.")
]
Since = Annotated[
    str | None, typer.Option(help="Since then: 30m, 24h, 1d, 7d or an ISO 8601 time.")
]
