"""Orders (one booked unit of a variant each) and the history of their status changes.

An order copies what was bought (variant name, unit price, vendor name, the customer's email) when
it is placed: the catalogue may change or be archived later, the order's record must not.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models

from marketlink.audit import OPERATOR_MAX_LENGTH
from marketlink.catalog.models import ServiceVariant
from marketlink.vendors.models import VendorProfile


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending payment"
    PAID = "paid", "Paid"
    PROCESSING = "processing", "Processing"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Payment failed"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class ChangeSource(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Payment webhook"
    TASK = "task", "Background task"
    CLI = "cli", "Command line"
    ADMIN = "admin", "Admin"


class RepairOrder(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # SET_NULL: a host may delete a customer's user (erasure); the order keeps its copies
    # (customer_email, names, prices) and history for the vendor's and staff's records, and
    # with no customer it is no one's "my order" any more (only its vendor and staff see it).
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="marketlink_orders",
    )
    vendor = models.ForeignKey(VendorProfile, on_delete=models.PROTECT, related_name="orders")
    variant = models.ForeignKey(ServiceVariant, on_delete=models.PROTECT, related_name="orders")
    customer_email = models.EmailField()
    vendor_name = models.CharField(max_length=200)
    variant_name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    # The variant's stock right after this order took its unit, as the seed's clients expect.
    stock_after_reservation = models.IntegerField()
    total_amount = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    payment_method = models.CharField(max_length=16)
    expires_at = models.DateTimeField(help_text="When a pending order's reservation lapses.")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Only in PAYMENT_LINK_MODE "eager": the provider's own page, returned as payment_url.
    checkout_url = models.URLField(max_length=2000, blank=True)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    refund_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # What the provider has given back of this order's own payment (succeeded refunds), kept by
    # payments: the order counts as refunded only once it reaches the total.
    amount_refunded = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    # Frozen when the order is placed, so a later change of fee never rewrites it:
    # platform_fee + vendor_share = total_amount. With payouts off the fee is 0.
    platform_fee = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    vendor_share = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0.00"))
    # Placed while payouts were on: only such an order's share is ever transferred.
    payouts_on = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["vendor", "status"]),
            models.Index(fields=["variant", "status", "expires_at"]),
            models.Index(fields=["status", "expires_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="marketlink_order_idempotency_key",
            ),
            models.CheckConstraint(
                condition=models.Q(total_amount__gt=0), name="marketlink_order_amount_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(platform_fee__gte=0, vendor_share__gte=0),
                name="marketlink_order_fee_and_share_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"


class OrderStatusChange(models.Model):
    """One status change of an order: from what, to what, made by what and by whom, when.

    ``actor`` is the user who made it through the API or the admin; ``operator`` is who ran the
    command that made it (``--as``, else the account running it). Both are empty for the
    payment provider's events and background tasks, which no person made.
    """

    order = models.ForeignKey(RepairOrder, on_delete=models.CASCADE, related_name="history")
    from_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    to_status = models.CharField(max_length=16, choices=OrderStatus.choices)
    source = models.CharField(max_length=16, choices=ChangeSource.choices)
    # SET_NULL, as the order's customer: erasing a user keeps the history and forgets the person.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="marketlink_order_changes",
        help_text="The user who made the change (API or admin).",
    )
    operator = models.CharField(
        max_length=OPERATOR_MAX_LENGTH,
        blank=True,
        help_text="Who ran the command that made the change.",
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status} -> {self.to_status} ({self.source})"
