"""Writing to the outbox: owe a side effect in the caller's transaction, and set failed or
waiting entries going again (an operator's retry)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from marketlink.outbox import tasks
from marketlink.outbox.models import EntryStatus, OutboxEntry


def dedupe_key(kind: str, subject_id: Any) -> str:
    return f"{kind}:{subject_id}"


def outbox_write(
    *,
    kind: str,
    subject_id: Any,
    payload: dict[str, Any] | None = None,
    due_at: datetime | None = None,
) -> None:
    """Owe ``kind`` for ``subject_id``, in the caller's transaction: it commits or vanishes with
    the change that owes it. Owing it again changes nothing (one row per ``kind:subject``).
    The drainer is woken once the transaction commits."""
    entry = OutboxEntry(
        kind=kind,
        subject_id=str(subject_id),
        dedupe_key=dedupe_key(kind, subject_id),
        payload=payload or {},
        due_at=due_at or timezone.now(),
    )
    OutboxEntry.objects.bulk_create([entry], ignore_conflicts=True)
    wake_after_commit()


def wake_after_commit() -> None:
    """One wake per transaction, however many entries it wrote."""
    # Django keeps (savepoint ids, callback, robust) for each callback of the transaction.
    queued = connection.run_on_commit if connection.in_atomic_block else []
    if any(entry[1] is tasks.wake for entry in queued):
        return
    transaction.on_commit(tasks.wake, robust=True)


def outbox_retry(*, ids: Collection[uuid.UUID]) -> int:
    """Make failed or waiting entries due now, their attempts counted afresh (a person fixed the
    cause). Running and done entries are left alone. Returns how many."""
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
    if changed:
        wake_after_commit()
    return changed
