"""The options every command spells the same way."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated

import typer

from marketlink.audit import OPERATOR_MAX_LENGTH, Actor, acting, os_user

Json = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, nothing else.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Run the real code, report what changes, change nothing.")
]
Since = Annotated[
    str | None, typer.Option(help="Since then: 30m, 24h, 1d, 7d or an ISO 8601 time.")
]


def _operator_checked(value: str | None) -> str | None:
    if value is None:
        return None
    name = value.strip()
    if not name or len(name) > OPERATOR_MAX_LENGTH or not name.isprintable():
        raise typer.BadParameter(
            f"give the operator's email: one line, at most {OPERATOR_MAX_LENGTH} characters"
        )
    return name


OperatorAs = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="EMAIL",
        callback=_operator_checked,
        show_default=False,
        help="Who runs this, named in the history of the orders it changes (default: the "
        "account running it).",
    ),
]


def acting_as(operator: str | None) -> AbstractContextManager[Actor]:
    """The ``audit`` scope of a command: changes it makes name ``--as``, else the account that
    runs it."""
    return acting(operator=operator or os_user())
