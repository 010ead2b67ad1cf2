"""The outbox: one row per side effect owed (an email, closing a checkout, a refund, a
transfer), written in the same transaction as the state change that owes it.

A row can be neither lost nor done twice by a lost task or a killed worker: it is committed with
the change, claimed by one drainer at a time, and finished only when its handler says so. Huey
merely wakes the drainer; the row is what is owed.
"""

from __future__ import annotations

import uuid

from django.db import models


class EntryStatus(models.TextChoices):
    PENDING = "pending", "Pending (due at due_at)"
    RUNNING = "running", "Running (claimed by a drainer until claimed_until)"
    DONE = "done", "Done"
    FAILED = "failed", "Failed for good (needs staff)"


class OutboxEntry(models.Model):
    """One side effect owed.

    ``dedupe_key`` is ``<kind>:<id of what owes it>`` and unique: one invoice per order, one
    checkout expiry per session, one refund ask per refund, one transfer per order. Writing the
    same effect twice (a redelivered event, two racing writers) leaves one row.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=40)
    subject_id = models.CharField(max_length=64, help_text="The id of what owes the effect.")
    dedupe_key = models.CharField(max_length=255, unique=True)
    # What the handler needs frozen at the time the effect was owed (an amount, say).
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=EntryStatus.choices, default=EntryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField(help_text="When it is (next) due.")
    # A drainer holds the row until then; a row whose claim lapsed (its drainer died) is due.
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    needs_attention = models.BooleanField(default=False)
    result = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox entries"
        indexes = [
            models.Index(fields=["status", "due_at"], name="marketlink_outbox_due"),
            models.Index(fields=["kind", "subject_id"], name="marketlink_outbox_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.dedupe_key} ({self.status})"
