"""A drainer's hold on the entries it claimed, kept while it works through them."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from marketlink import conf
from marketlink.outbox.models import EntryStatus, OutboxEntry


def hold(entry: OutboxEntry) -> bool:
    """Whether this drainer still holds ``entry``, about to do its side effect. Once half of
    the claim has passed it is extended (one conditional update); an entry whose claim lapsed
    and was taken by another drainer is no longer this one's: False, and its effect is left to
    that drainer."""
    claim_for = timedelta(seconds=conf.get().OUTBOX_CLAIM_SECONDS)
    now = timezone.now()
    held = entry.claimed_until
    if held is not None and held - now > claim_for / 2:
        return True
    extended = now + claim_for
    kept = OutboxEntry.objects.filter(
        pk=entry.pk, status=EntryStatus.RUNNING, claimed_until=held
    ).update(claimed_until=extended)
    if kept:
        entry.claimed_until = extended
    return bool(kept)
