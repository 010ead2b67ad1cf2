"""``--since``: a duration back from now (``30m``, ``24h``, ``1d``, ``7d``) or an ISO 8601 time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import typer

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# The earliest moment a --since may name: Python's first day, and a day more, so that the moment
# can still be shown in any time zone.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """The moment ``value`` means, timezone-aware; a naive ISO time is read as UTC, since an
    operator pasting a time from a log or Stripe's dashboard means that instant everywhere."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value)
    if match:
        amount, unit = match.groups()
        step = timedelta(**{_UNITS[unit]: 1})
        largest = (now - EARLIEST) // step
        if int(amount) > largest:
            raise typer.BadParameter(
                f"{value.strip()!r} reaches back before the year 1: the largest allowed is "
                f"{largest}{unit}."
            )
        return now - int(amount) * step
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither a duration (30m, 24h, 1d, 7d) nor an ISO 8601 time "
            "(2026-11-30T08:00:00Z)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment > now:
        raise typer.BadParameter(f"{value!r} is in the future.")
    if moment < EARLIEST:
        raise typer.BadParameter(
            f"{value!r} is before the earliest allowed, {EARLIEST.isoformat()}."
        )
    return moment
