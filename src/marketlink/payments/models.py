"""Payment records: every webhook delivery, the invoices sent, and the dummy gateway's sessions."""

from __future__ import annotations

import uuid

from django.db import models

from marketlink.money import ZERO_DECIMAL_CURRENCIES
from marketlink.orders.models import RepairOrder


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"
    IGNORED = "ignored", "Ignored (type not handled)"


class PaymentEvent(models.Model):
    """One provider event, kept with its raw payload whatever became of it.

    ``event_id`` is unique: it is what makes a redelivered or concurrently duplicated event
    change nothing once it has been processed. A failed event is processed again when it is
    delivered again (or replayed from the CLI or the admin).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.CharField(max_length=255, unique=True)
    gateway = models.CharField(max_length=16)
    event_type = models.CharField(max_length=100)
    order = models.ForeignKey(
        RepairOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="payment_events"
    )
    payload = models.JSONField()
    status = models.CharField(
        max_length=16, choices=EventStatus.choices, default=EventStatus.RECEIVED
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    needs_attention = models.BooleanField(
        default=False, help_text="A permanent problem (amount mismatch, unknown order) for staff."
    )
    result = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["order", "status"]),
            models.Index(fields=["status", "needs_attention"]),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.status})"


class InvoiceStatus(models.TextChoices):
    PENDING = "pending", "Pending (not sent yet)"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (needs staff)"


class Invoice(models.Model):
    """The invoice emailed for a paid order; one per order, sent at most once.

    Its row is written in the same transaction that moves the order to processing, so a pending
    invoice is the record of an email still owed, whatever happens to the task. ``failed`` means
    marketlink gave up (retries spent, or an address no mail server can deliver to): staff look.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.OneToOneField(RepairOrder, on_delete=models.PROTECT, related_name="invoice")
    number = models.CharField(max_length=40, unique=True)
    status = models.CharField(
        max_length=16, choices=InvoiceStatus.choices, default=InvoiceStatus.PENDING
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return self.number


class DummyCheckoutSession(models.Model):
    """The dummy gateway's own "provider-side" session, so it behaves like Stripe's."""

    id = models.CharField(max_length=64, primary_key=True)
    order = models.ForeignKey(RepairOrder, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, default="open")
    payment_status = models.CharField(max_length=16, default="unpaid")
    payment_intent_id = models.CharField(max_length=64, blank=True)
    amount_minor = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=300)
    success_url = models.URLField(max_length=2000)
    cancel_url = models.URLField(max_length=2000)
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.id

    @property
    def amount_display(self) -> str:
        """The amount as a person reads it: ``40.00 USD``, ``4000 JPY``."""
        currency = self.currency.upper()
        if self.currency.lower() in ZERO_DECIMAL_CURRENCIES:
            return f"{self.amount_minor} {currency}"
        return f"{self.amount_minor // 100}.{self.amount_minor % 100:02d} {currency}"
