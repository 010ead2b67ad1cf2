"""Payment records: every webhook delivery, the invoices sent, the refunds asked for, the disputes
opened, and the dummy gateway's sessions and events."""

from __future__ import annotations

import uuid

from django.db import models

from marketlink.money import format_minor_units
from marketlink.orders.models import RepairOrder

# How much of what processing an event said its row keeps (``PaymentEvent.result``).
RESULT_LENGTH = 500


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
    result = models.CharField(max_length=RESULT_LENGTH, blank=True)
    # A connected account's event (Connect) names the account; the platform's own events do not.
    account = models.CharField(max_length=255, blank=True)
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

    It is owed by the transaction that pays the order (an outbox entry of kind ``invoice``); its
    row is written in the transaction that moves the order to processing, before the email is
    tried. ``failed`` means marketlink gave up (retries spent, or an address no mail server can
    deliver to): staff look.
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


class RefundKind(models.TextChoices):
    ORDER = "order", "The order's own payment"
    DUPLICATE = "duplicate", "A second payment for a paid order"
    LATE = "late", "A payment after the reservation ended, with no unit left"
    EXTERNAL = "external", "Made at the provider (e.g. its dashboard)"


class RefundStatus(models.TextChoices):
    # Asked for, the provider not reached yet (or its answer lost): it is asked again.
    REQUESTED = "requested", "Requested"
    PENDING = "pending", "Pending at the provider"
    REQUIRES_ACTION = "requires_action", "Requires action at the provider"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


# A refund in these states has not moved money yet, and may still.
UNSETTLED_REFUND_STATUSES = frozenset(
    {RefundStatus.REQUESTED, RefundStatus.PENDING, RefundStatus.REQUIRES_ACTION}
)


class Refund(models.Model):
    """One refund at the provider, from the moment marketlink decides to make it (or learns that
    the provider made one) until the provider says how it ended.

    A payment may have several refunds (a partial one made in the provider's dashboard, then
    marketlink's of the rest; a retry after a failure), each on its own row with its own amount,
    currency and status. marketlink writes its row before asking the provider, so the row has no
    provider id yet: the request carries the row's id as metadata, and the provider's events
    find it by that first. Only events about this refund settle it.

    The order becomes ``refunded`` only when the succeeded refunds of its own payment reach its
    total; refunds of other payments (a duplicate, a late one) never count toward it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(RepairOrder, on_delete=models.PROTECT, related_name="refunds")
    kind = models.CharField(max_length=16, choices=RefundKind.choices)
    payment_intent_id = models.CharField(max_length=255, db_index=True)
    provider_refund_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    amount_minor = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=16, choices=RefundStatus.choices, default=RefundStatus.REQUESTED
    )
    # Sent with every ask for this refund: a retry after a lost answer gets the same refund.
    idempotency_key = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # When the provider was first asked under ``idempotency_key``. Stripe forgets a key after
    # 24 hours: an ask later than that looks the refund up first.
    first_asked_at = models.DateTimeField(null=True, blank=True)
    # Set once, when the refund succeeded: money that went back counts toward the order's
    # refund even if the provider later reports the refund failed (which is flagged).
    succeeded_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    needs_attention = models.BooleanField(
        default=False,
        help_text="Could not be made, failed, partial or in another currency: for staff.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "needs_attention"])]

    def __str__(self) -> str:
        return f"refund {self.provider_refund_id or self.pk} of {self.payment_intent_id}"

    @property
    def amount_display(self) -> str:
        return format_minor_units(self.amount_minor, self.currency)


class DisputeOutcome(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Dispute(models.Model):
    """A chargeback the customer's bank opened against an order's payment. Always flagged for
    staff: evidence has a deadline, and a lost dispute is money gone that no status shows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(RepairOrder, on_delete=models.PROTECT, related_name="disputes")
    provider_dispute_id = models.CharField(max_length=255, unique=True)
    payment_intent_id = models.CharField(max_length=255, blank=True)
    amount_minor = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=100, blank=True)
    provider_status = models.CharField(max_length=40, blank=True)
    outcome = models.CharField(
        max_length=8, choices=DisputeOutcome.choices, default=DisputeOutcome.OPEN
    )
    needs_attention = models.BooleanField(default=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"dispute {self.provider_dispute_id} ({self.outcome})"


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
        """The amount as a person reads it: ``40.00 USD``, ``4000 JPY``, ``10.500 KWD``."""
        return format_minor_units(self.amount_minor, self.currency)


class DummyEvent(models.Model):
    """An event the dummy gateway emitted, kept on its "provider side" as Stripe keeps its own,
    so the dummy answers ``list_events`` from what it sent, not from what marketlink stored."""

    id = models.CharField(max_length=64, primary_key=True)
    event_type = models.CharField(max_length=100)
    payload = models.JSONField()
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"


class DummyAccount(models.Model):
    """A connected account on the dummy gateway's "provider side": onboarded at once by its
    own page, so a demo pays vendors out end to end."""

    id = models.CharField(max_length=64, primary_key=True)
    vendor_ref = models.CharField(max_length=64)
    email = models.EmailField(blank=True)
    country = models.CharField(max_length=2)
    onboarded = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.id


class DummyTransfer(models.Model):
    """A transfer the dummy gateway made: one per idempotency key, as Stripe's."""

    id = models.CharField(max_length=64, primary_key=True)
    destination = models.ForeignKey(DummyAccount, on_delete=models.PROTECT, related_name="+")
    amount_minor = models.PositiveBigIntegerField()
    amount_reversed_minor = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3)
    transfer_group = models.CharField(max_length=255, db_index=True)
    source_transaction = models.CharField(max_length=255, blank=True)
    order_ref = models.CharField(max_length=64, blank=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id


class DummyReversal(models.Model):
    id = models.CharField(max_length=64, primary_key=True)
    transfer = models.ForeignKey(DummyTransfer, on_delete=models.PROTECT, related_name="reversals")
    amount_minor = models.PositiveBigIntegerField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.id
