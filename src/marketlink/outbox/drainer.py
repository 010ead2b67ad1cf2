"""Draining the outbox: claim due entries in a short transaction, run their handlers outside
any transaction, record each outcome in a short transaction of its own.

Claiming on PostgreSQL is ``SELECT … FOR UPDATE SKIP LOCKED`` then ``status = running`` with a
``claimed_until`` stamp, committed at once: two drainers never take the same entry, and neither
waits for the other. On SQLite (one writer at a time) the same conditional update is the claim.
An entry whose claim lapsed (its drainer was killed) is due again, so nothing owed is ever left
behind. A drainer still alive but slow (a mail server or a provider that takes its time) keeps
its claims: handlers call :func:`hold` before each side effect, which extends the claim once
half of it has passed, or tells them another drainer took the entry (then they leave it).
Handlers are idempotent, so the one effect in flight when a drainer is killed may run twice,
and nothing else does.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import groupby

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from marketlink import conf, metrics
from marketlink.outbox.claims import hold
from marketlink.outbox.models import EntryStatus, OutboxEntry
from marketlink.outbox.registry import Done, Failed, Kind, Outcome, Retry, kind_named

logger = logging.getLogger(__name__)

CLAIM_BATCH = 100
# How an entry of a kind no app here registered waits: retried as any kind is (its app may be
# installed by the next deploy), then failed for good, so a person sees it.
UNKNOWN_KIND = Kind("unknown", lambda entries: {})
ERROR_LIMIT = 2000


def due(now: datetime) -> Q:
    """Entries to run now: pending ones whose time has come, and running ones whose drainer's
    claim lapsed."""
    pending = Q(status=EntryStatus.PENDING, due_at__lte=now)
    lapsed = Q(status=EntryStatus.RUNNING, claimed_until__lt=now)
    return pending | lapsed


def drain(
    *,
    kinds: Collection[str] | None = None,
    only: Collection[uuid.UUID] | None = None,
    limit: int | None = None,
    batch: int = CLAIM_BATCH,
) -> Counter[str]:
    """Run what is due, ``batch`` claimed at a time, until nothing is (or ``limit`` entries
    ran). Counts the outcomes: ``done``, ``retry``, ``failed``. ``kinds`` / ``only``: just
    those."""
    counts: Counter[str] = Counter()
    while limit is None or counts.total() < limit:
        size = batch if limit is None else min(batch, limit - counts.total())
        claimed = claim(size, kinds=kinds, only=only)
        if not claimed:
            break
        for name, entries in groupby(claimed, key=lambda entry: entry.kind):
            counts += run(list(entries), name)
    return counts


def claim(
    size: int, *, kinds: Collection[str] | None = None, only: Collection[uuid.UUID] | None = None
) -> list[OutboxEntry]:
    """Claim up to ``size`` due entries for this drainer, sorted by kind (then due time)."""
    now = timezone.now()
    # Longer than any batch takes (a mail server or a provider slow to answer), short enough
    # that a killed drainer's entries are soon due again (``OUTBOX_CLAIM_SECONDS``).
    stamp = now + timedelta(seconds=conf.get().OUTBOX_CLAIM_SECONDS)
    candidates = OutboxEntry.objects.filter(due(now))
    if kinds is not None:
        candidates = candidates.filter(kind__in=list(kinds))
    if only is not None:
        candidates = candidates.filter(pk__in=list(only))
    with transaction.atomic():
        ids = list(
            candidates.select_for_update(skip_locked=True)
            .order_by("due_at")
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return []
        # The condition again: on SQLite (no row locks) another drainer may have won a row.
        OutboxEntry.objects.filter(due(now), pk__in=ids).update(
            status=EntryStatus.RUNNING,
            claimed_until=stamp,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    mine = OutboxEntry.objects.filter(pk__in=ids, status=EntryStatus.RUNNING, claimed_until=stamp)
    return sorted(mine, key=lambda entry: (entry.kind, entry.due_at))


def run(entries: Sequence[OutboxEntry], name: str) -> Counter[str]:
    """Run one kind's handler over claimed entries, in batches of its size; record each
    outcome. An entry of a kind no app registered waits, and fails for good in the end (its app
    is not installed here)."""
    kind = kind_named(name)
    counts: Counter[str] = Counter()
    if kind is None:
        for entry in entries:
            counts[
                record(entry, Retry(f"no handler for {name!r}: is its app installed?"), None)
            ] += 1
        return counts
    for batch in _chunks(entries, kind.batch_size):
        try:
            outcomes = dict(kind.handle(batch))
        except Exception as exc:
            logger.exception("outbox: the %s handler failed on a batch", name)
            outcomes = {entry.pk: Retry(f"{type(exc).__name__}: {exc}") for entry in batch}
        for entry in batch:
            outcome = outcomes.get(entry.pk)
            if outcome is None:
                if not hold(entry):
                    continue  # another drainer took it over: its outcome is that drainer's
                outcome = Retry("the handler said nothing of it")
            counts[record(entry, outcome, kind)] += 1
    return counts


def _chunks(entries: Sequence[OutboxEntry], size: int) -> Iterator[Sequence[OutboxEntry]]:
    for start in range(0, len(entries), max(size, 1)):
        yield entries[start : start + size]


def record(entry: OutboxEntry, outcome: Outcome, kind: Kind | None) -> str:
    """Write one entry's outcome, if this drainer still holds it (a lapsed claim taken over by
    another drainer is that drainer's to record). Returns ``done``, ``retry`` or ``failed``."""
    now = timezone.now()
    mine = OutboxEntry.objects.filter(
        pk=entry.pk, status=EntryStatus.RUNNING, claimed_until=entry.claimed_until
    )
    retries = kind.retries if kind is not None else UNKNOWN_KIND.retries
    if isinstance(outcome, Retry) and entry.attempts > retries:
        outcome = Failed(f"{outcome.error} (gave up after {entry.attempts} attempts)")
    if isinstance(outcome, Done):
        mine.update(
            status=EntryStatus.DONE,
            done_at=now,
            claimed_until=None,
            result=outcome.detail[:500],
            last_error="",
            needs_attention=False,
            updated_at=now,
        )
        _log(logging.INFO, entry, "done", outcome.detail)
        return "done"
    if isinstance(outcome, Retry):
        delay = (kind or UNKNOWN_KIND).retry_delay(entry.attempts)
        mine.update(
            status=EntryStatus.PENDING,
            due_at=now + delay,
            claimed_until=None,
            last_error=outcome.error[:ERROR_LIMIT],
            updated_at=now,
        )
        _log(logging.WARNING, entry, "retry", outcome.error)
        metrics.task_failed(entry.kind, final=False)
        return "retry"
    with transaction.atomic():
        flagged = mine.update(
            status=EntryStatus.FAILED,
            claimed_until=None,
            last_error=outcome.error[:ERROR_LIMIT],
            needs_attention=True,
            updated_at=now,
        )
        if flagged and kind is not None and kind.on_give_up is not None:
            kind.on_give_up(entry, outcome.error)
    _log(logging.ERROR, entry, "failed", outcome.error)
    metrics.task_failed(entry.kind, final=True)
    return "failed"


def _log(level: int, entry: OutboxEntry, outcome: str, detail: str) -> None:
    logger.log(
        level,
        "outbox %s: %s%s",
        entry.dedupe_key,
        outcome,
        f": {detail}" if detail else "",
        extra={
            "event": f"outbox.{outcome}",
            "kind": entry.kind,
            "subject_id": entry.subject_id,
            "attempts": entry.attempts,
        },
    )


FORGET_BATCH = 1000


def forget_done() -> int:
    """Delete done entries older than ``OUTBOX_KEEP_DAYS`` (a batch at a time, so the periodic
    run stays short): the table holds what is owed, and a while of what was done. Failed
    entries stay until a person runs them again."""
    cutoff = timezone.now() - timedelta(days=conf.get().OUTBOX_KEEP_DAYS)
    old = OutboxEntry.objects.filter(status=EntryStatus.DONE, done_at__lt=cutoff)
    ids = list(old.order_by().values_list("pk", flat=True)[:FORGET_BATCH])
    deleted, _ = OutboxEntry.objects.filter(pk__in=ids).delete()
    return deleted
