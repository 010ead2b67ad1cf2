"""What a command found and did, and how it is shown: a Rich table for people, one JSON document
for scripts, and the exit code both can act on."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, TypeVar

from django.core.serializers.json import DjangoJSONEncoder

T = TypeVar("T")


class ExitCode(IntEnum):
    """Ordered by urgency: when several apply, the highest wins."""

    OK = 0
    NEEDS_ATTENTION = 1
    USAGE = 2
    UNREACHABLE = 3


# Which code wins when two apply: a dependency down outranks work for a person, which outranks
# "all is well". Usage errors stop a command before it does anything, so never compete.
_PRECEDENCE = {ExitCode.OK: 0, ExitCode.NEEDS_ATTENTION: 1, ExitCode.UNREACHABLE: 2}


@dataclass
class Report:
    """The result of one command: ``items`` (one row each, the keys in ``columns`` shown in the
    table), a ``summary`` of counts an incident report can quote, notes for the operator, and
    the exit code it earned."""

    title: str
    columns: Sequence[str]
    dry_run: bool = False
    items: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    exit_code: ExitCode = ExitCode.OK
    # Counts per kind of thing (one row each) in ``kind_columns``: a second table, and
    # ``summary.by_kind`` in the JSON document.
    kind_columns: Sequence[str] = ()
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, **item: Any) -> None:
        self.items.append(item)

    def count(self, key: str, by: int = 1) -> None:
        self.summary[key] = self.summary.get(key, 0) + by

    def tally(self, kind: str, *columns: str) -> None:
        """Count one thing of ``kind`` in each of ``columns`` (none: the row is shown, zeros)."""
        counts = self.by_kind.setdefault(kind, dict.fromkeys(self.kind_columns, 0))
        for column in columns:
            counts[column] += 1

    def escalate(self, code: ExitCode, note: str | None = None) -> None:
        if _PRECEDENCE[code] > _PRECEDENCE[self.exit_code]:
            self.exit_code = code
        if note and note not in self.notes:
            self.notes.append(note)

    def needs_attention(self, note: str | None = None) -> None:
        self.escalate(ExitCode.NEEDS_ATTENTION, note)

    def unreachable(self, note: str) -> None:
        self.escalate(ExitCode.UNREACHABLE, note)

    def document(self) -> dict[str, Any]:
        """The ``--json`` document: the summary (with the exit code and notes) and the items."""
        summary = {
            **self.summary,
            **({"by_kind": self.by_kind} if self.by_kind else {}),
            "dry_run": self.dry_run,
            "exit_code": int(self.exit_code),
            "notes": self.notes,
        }
        return {"summary": summary, "items": self.items}


def render(report: Report, *, as_json: bool) -> None:
    """Print the report: with ``as_json``, only the JSON document on stdout (the tables go to
    stderr when it is a terminal, for the person watching); else the tables on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(report.document(), cls=DjangoJSONEncoder, sort_keys=True))
        sys.stdout.write("\n")
        sys.stdout.flush()
        if sys.stderr.isatty():
            _print_tables(report, _console(sys.stderr))
        return
    _print_tables(report, _console(sys.stdout))


def say(message: str, *, as_json: bool) -> None:
    """Tell the operator what is about to happen: on stdout for people, on stderr when stdout
    carries the JSON document."""
    _console(sys.stderr if as_json else sys.stdout).print(message, markup=False, highlight=False)


def progress(items: Iterable[T], *, total: int | None, description: str) -> Iterator[T]:
    """``items``, with a progress bar on stderr when it is a terminal (never in a pipe or log)."""
    if not sys.stderr.isatty():
        yield from items
        return
    from rich.progress import track

    yield from track(items, total=total, description=description, console=_console(sys.stderr))


def _console(stream: Any) -> Any:
    from rich.console import Console

    # Off a terminal nothing wraps ids and timestamps at 80 columns or colours a log file.
    terminal = stream.isatty()
    return Console(file=stream, width=None if terminal else 200, no_color=not terminal)


def _print_tables(report: Report, console: Any) -> None:
    from rich import box
    from rich.table import Table

    # Plain ASCII off a terminal: it survives being pasted into an incident report or a ticket.
    style = box.HEAVY_HEAD if console.is_terminal else box.ASCII
    if report.items:
        console.print(f"{report.title}:", markup=False, highlight=False)
        table = Table(box=style)
        for column in report.columns:
            table.add_column(column.replace("_", " "), overflow="fold")
        for item in report.items:
            table.add_row(*(_cell(item.get(column)) for column in report.columns))
        console.print(table)
    if report.by_kind:
        console.print("By kind:", markup=False, highlight=False)
        kinds = Table(box=style)
        kinds.add_column("kind")
        for column in report.kind_columns:
            kinds.add_column(column.replace("_", " "), justify="right")
        for kind, counts in report.by_kind.items():
            kinds.add_row(kind.replace("_", " "), *(str(counts[c]) for c in report.kind_columns))
        console.print(kinds)
    heading = "Summary" + (" (dry run: nothing changed)" if report.dry_run else "") + ":"
    console.print(heading, markup=False, highlight=False)
    summary = Table(box=style)
    summary.add_column("what")
    summary.add_column("count / value", justify="right")
    for key, value in report.summary.items():
        summary.add_row(key.replace("_", " "), _cell(value))
    summary.add_row("exit code", str(int(report.exit_code)))
    console.print(summary)
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
