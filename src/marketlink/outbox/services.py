"""Writing to the outbox: owe a side effect in the caller's transaction, and set failed or
waiting entries going again (an operator's retry)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink.outbox import tasks
from marketlink.outbox.drainer import drain
from marketlink.outbox.models import EntryStatus, OutboxEntry


def dedupe_key(kind: str, subject_id: Any) -> str:
    return f"{kind}:{subject_id}"


def outbox_write(
    *,
    kind: str,
    subject_id: Any,
    payload: dict[str, Any] | None = None,
    due_at: datetime | None = None,
    wake: bool = True,
) -> None:
    """Owe ``kind`` for ``subject_id``, in the caller's transaction: it commits or vanishes with
    the change that owes it. Owing it again changes nothing (one row per ``kind:subject``).
    The drainer is woken once the transaction commits, unless the caller runs the entry itself
    (``wake=False``, then :func:`outbox_run_now`); the periodic run is the net either way."""
    entry = OutboxEntry(
        kind=kind,
        subject_id=str(subject_id),
        dedupe_key=dedupe_key(kind, subject_id),
        payload=payload or {},
        due_at=due_at or timezone.now(),
    )
    OutboxEntry.objects.bulk_create([entry], ignore_conflicts=True)
    if wake:
        wake_after_commit()


def outbox_run_now(*, kind: str, subject_id: Any) -> None:
    """Run one owed entry in this process, now, if it is due (the API answering with its
    outcome); one another drainer holds, or that is done, is left to it."""
    entry = OutboxEntry.objects.filter(dedupe_key=dedupe_key(kind, subject_id)).first()
    if entry is not None:
        drain(only=[entry.pk])


def wake_after_commit() -> None:
    """A wake once the transaction commits (a rollback drops it with the entries). Several
    in one transaction cost one cache round trip each: ``tasks.wake`` queues one drain."""
    transaction.on_commit(tasks.wake, robust=True)


def outbox_retry(*, ids: Collection[uuid.UUID], wake: bool = True) -> int:
    """Make failed or waiting entries due now, their attempts counted afresh (a person fixed the
    cause). Running and done entries are left alone. Returns how many. ``wake=False``: the
    caller runs them itself (:func:`outbox_run_now`)."""
    now = timezone.now()
    changed = OutboxEntry.objects.filter(
        pk__in=list(ids), status__in=[EntryStatus.FAILED, EntryStatus.PENDING]
    ).update(
        status=EntryStatus.PENDING,
        due_at=now,
        attempts=0,
        needs_attention=False,
        updated_at=now,
    )
    if changed and wake:
        wake_after_commit()
    return changed
