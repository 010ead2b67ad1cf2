"""The plumbing every command shares: finding Django, dry runs, and turning what happened into
the report's exit code (a dependency that is down is exit 3, whichever command met it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, redirect_stdout
from typing import Any, TypeVar

import typer

from marketlink.operations.report import Report, render

T = TypeVar("T")


def setup_django() -> None:
    """Configure Django from the host's settings, or stop with an explanation (exit 2)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        typer.echo(
            "No Django settings: pass --settings mysite.settings or set DJANGO_SETTINGS_MODULE.",
            err=True,
        )
        raise typer.Exit(2)
    sys.path.insert(0, os.getcwd())
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except (ImportError, ImproperlyConfigured) as exc:
        typer.echo(f"The Django settings cannot be loaded: {exc}", err=True)
        raise typer.Exit(2) from None


class _RollBack(Exception):
    """Carries a dry run's result out of the transaction it rolls back."""


def run_maybe_dry(dry_run: bool, action: Callable[[], T]) -> T:
    """Run ``action``; on a dry run, inside a transaction that is rolled back afterwards (with
    the tasks it would have enqueued on commit), so the real code reports the real changes."""
    if not dry_run:
        return action()
    from django.db import transaction

    try:
        with transaction.atomic():
            raise _RollBack(action())
    except _RollBack as rolled_back:
        return rolled_back.args[0]  # type: ignore[no-any-return]


def unreachable_dependency(exc: BaseException) -> str | None:
    """Which dependency ``exc`` says is down (database, Redis, payment provider), if any."""
    from django.db import InterfaceError, OperationalError

    from marketlink.exceptions import PaymentProviderError, ServiceUnavailable

    if isinstance(exc, (OperationalError, InterfaceError)):
        return "database"
    if isinstance(exc, PaymentProviderError):
        return "payment provider"
    if isinstance(exc, ServiceUnavailable):
        return "a dependency"
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis is optional for a SQLite-only host
        return None
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError)):
        return "Redis"
    return None


def escalate_failure(report: Report, exc: Any, note: str) -> None:
    """One item failed with ``exc``: exit 3 if a dependency is down, else a person is needed."""
    dependency = unreachable_dependency(exc)
    if dependency:
        report.unreachable(f"{dependency} unreachable: {exc.message}")
    else:
        report.needs_attention(note)


@contextmanager
def operation(report: Report, *, as_json: bool) -> Iterator[Report]:
    """Run a command's body, then print its report and exit with its code. A dependency found
    down midway ends the body: what was done so far is reported, with exit code 3."""
    try:
        with _stdout_for_the_report(as_json):
            yield report
    except Exception as exc:
        if _missing_table(exc):
            typer.echo(
                f"The database is not set up for marketlink ({_one_line(exc)}): run "
                "`django-admin migrate` (or `manage.py migrate`) first.",
                err=True,
            )
            raise typer.Exit(2) from None
        dependency = unreachable_dependency(exc)
        if dependency is None:
            raise
        report.unreachable(f"{dependency} unreachable: {_one_line(exc)}")
    render(report, as_json=as_json)
    raise typer.Exit(int(report.exit_code))


def _stdout_for_the_report(as_json: bool) -> AbstractContextManager[object]:
    """With ``--json`` stdout carries the document alone, so whatever the body prints (an email
    from the console mail backend, sent by a task run inline; a library's print) goes to stderr
    while it runs; the document is written after, to the real stdout."""
    return redirect_stdout(sys.stderr) if as_json else nullcontext()


def _missing_table(exc: BaseException) -> bool:
    """A reachable database without marketlink's tables: a configuration error (exit 2)."""
    from django.db import OperationalError, ProgrammingError

    text = str(exc)
    return (isinstance(exc, OperationalError) and "no such table" in text) or (
        isinstance(exc, ProgrammingError) and "does not exist" in text
    )


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "message", None) or exc).split())
    return text[:300] or type(exc).__name__
