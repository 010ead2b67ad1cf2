"""Reads of the outbox, for doctor, the CLI and reconcile."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from marketlink.outbox.drainer import due
from marketlink.outbox.models import EntryStatus, OutboxEntry

# The drainer runs every minute: an entry due for longer has no drainer running it.
OVERDUE_AFTER = timedelta(minutes=5)


def entries_overdue(*, by: timedelta, kinds: list[str] | None = None) -> QuerySet[OutboxEntry]:
    """Entries due for longer than ``by``: no drainer has run them (no consumer, or its
    scheduler is off), or their claim lapsed long ago."""
    entries = OutboxEntry.objects.filter(due(timezone.now() - by))
    return entries.filter(kind__in=kinds) if kinds is not None else entries


def entries_failed(*, kinds: list[str] | None = None) -> QuerySet[OutboxEntry]:
    entries = OutboxEntry.objects.filter(status=EntryStatus.FAILED)
    return entries.filter(kind__in=kinds) if kinds is not None else entries


def entries_listed(
    *, kinds: list[str] | None = None, statuses: list[str] | None = None
) -> QuerySet[OutboxEntry]:
    query = Q()
    if kinds:
        query &= Q(kind__in=kinds)
    if statuses:
        query &= Q(status__in=statuses)
    return OutboxEntry.objects.filter(query).order_by("-created_at")


def entries_of(kind: str, *subject_ids: object) -> QuerySet[OutboxEntry]:
    """The entries ``kind`` owes for these subjects (one each at most)."""
    return OutboxEntry.objects.filter(dedupe_key__in=[f"{kind}:{s}" for s in subject_ids])
