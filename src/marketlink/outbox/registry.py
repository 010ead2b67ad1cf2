"""The kinds of side effect the outbox knows, and what each handler may answer.

Each app registers the handlers of its own kinds in its ``AppConfig.ready()`` (payments: the
invoice, closing a checkout, a refund; payouts: transfers and reversals), as gateways register:
the outbox imports no domain app.

A handler gets a batch of claimed entries of its kind and answers, for each, :class:`Done`,
:class:`Retry` (a failure that may pass: tried again after a back-off) or :class:`Failed` (one
that will not: flagged for staff). Handlers run outside any transaction (they call mail servers
and payment providers) and must be idempotent: an entry whose drainer died is run again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from marketlink.outbox.models import OutboxEntry

from marketlink.outbox.claims import hold

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Done:
    detail: str = ""


@dataclass(frozen=True)
class Retry:
    error: str


@dataclass(frozen=True)
class Failed:
    error: str


Outcome = Done | Retry | Failed
BatchHandler = Callable[[Sequence["OutboxEntry"]], Mapping[uuid.UUID, Outcome]]
EntryHandler = Callable[["OutboxEntry"], Outcome]


@dataclass(frozen=True)
class Kind:
    """One kind of side effect: its handler and how it is retried.

    The defaults retry 8 times, 10 s after the first failure and twice as long each time (the
    last wait about 21 minutes, about 42 in all): the ninth failure is final.
    ``on_give_up`` tells the owning app the effect failed for good (an invoice marked failed,
    say), in the transaction that flags the entry."""

    name: str
    handle: BatchHandler
    batch_size: int = 50
    retries: int = 8
    first_retry: timedelta = timedelta(seconds=10)
    on_give_up: Callable[[OutboxEntry, str], None] | None = field(default=None)

    def retry_delay(self, attempts: int) -> timedelta:
        factor: int = 2 ** max(attempts - 1, 0)
        return self.first_retry * factor


_kinds: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    _kinds[kind.name] = kind


def kind_named(name: str) -> Kind | None:
    return _kinds.get(name)


def kinds() -> list[str]:
    return sorted(_kinds)


def one_at_a_time(handler: EntryHandler) -> BatchHandler:
    """A batch handler that runs ``handler`` on each entry this drainer still holds
    (``drainer.hold``); an exception is a failure that may pass (:class:`Retry`), logged with
    its traceback."""

    def handle(entries: Sequence[OutboxEntry]) -> dict[uuid.UUID, Outcome]:
        outcomes: dict[uuid.UUID, Outcome] = {}
        for entry in entries:
            if not hold(entry):
                continue  # another drainer took it over: its outcome is that drainer's
            try:
                outcomes[entry.pk] = handler(entry)
            except Exception as exc:
                logger.warning(
                    "outbox %s: %s",
                    entry.dedupe_key,
                    exc,
                    exc_info=True,
                    extra={"event": "outbox.handler_raised", "kind": entry.kind},
                )
                outcomes[entry.pk] = Retry(f"{type(exc).__name__}: {exc}")
        return outcomes

    return handle
