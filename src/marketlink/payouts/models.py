"""Payouts: each vendor's connected account, each order's payout, and the ledger.

Money is counted from the vendor's point of view: a :class:`PayoutEntry` says what the platform
owes the vendor (``+``) or the vendor owes the platform (``-``). A vendor's balance is the sum of
their entries: positive, it is what is held or due to them; negative, their debt. Entries are
never updated or deleted: a correction is another entry.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models

from marketlink.orders.models import RepairOrder
from marketlink.vendors.models import VendorProfile

ZERO = Decimal("0.00")


class ConnectedAccount(models.Model):
    """The vendor's account at the payment provider, as marketlink last read it. One per
    vendor, created on their first onboarding request; never the onboarding link, which is
    single use and handed straight to the vendor."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vendor = models.OneToOneField(
        VendorProfile, on_delete=models.PROTECT, related_name="connected_account"
    )
    account_id = models.CharField(max_length=255, unique=True)
    gateway = models.CharField(max_length=16)
    country = models.CharField(max_length=2, blank=True)
    charges_enabled = models.BooleanField(default=False)
    payouts_enabled = models.BooleanField(default=False)
    details_submitted = models.BooleanField(default=False)
    transfers_active = models.BooleanField(default=False)
    requirements_due = models.JSONField(default=list, blank=True)
    deauthorized = models.BooleanField(
        default=False, help_text="The account disconnected from the platform: it is never ready."
    )
    needs_attention = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.account_id

    @property
    def ready(self) -> bool:
        """Can receive transfers: payouts enabled and the transfers capability active. Never
        ``charges_enabled``: an account that only receives transfers may keep it false."""
        return self.payouts_enabled and self.transfers_active and not self.deauthorized


class PayoutStatus(models.TextChoices):
    HELD = "held", "Held (paid, not released yet)"
    DUE = "due", "Due (the release is owed and not made yet)"
    RELEASED = "released", "Released (transferred)"
    REVERSED = "reversed", "Reversed (taken back, or its debt recovered)"
    DEBT = "debt", "Debt (a reversal was refused; the vendor owes it)"
    FAILED = "failed", "Failed (the release failed for good)"
    CANCELLED = "cancelled", "Cancelled (refunded or cancelled before release)"


class Payout(models.Model):
    """The vendor's share of one paid order, from the payment until it is released (one
    transfer, ever), or cancelled, and what became of it after a refund or a dispute.

    ``share`` is the order's ``vendor_share``. ``amount`` is frozen when the release is owed:
    the share less ``recovered`` (debts of the vendor's earlier payouts taken back by sending
    less; ``recoveries`` says from which). ``reversal_due`` is what a reversal under way is
    taking back; ``debt`` what a refused reversal (or a partial refund staff charged to the
    vendor) left the vendor owing on this payout.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.OneToOneField(RepairOrder, on_delete=models.PROTECT, related_name="payout")
    vendor = models.ForeignKey(VendorProfile, on_delete=models.PROTECT, related_name="payouts")
    status = models.CharField(
        max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.HELD
    )
    currency = models.CharField(max_length=3)
    share = models.DecimalField(max_digits=10, decimal_places=2)
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    recovered = models.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    recoveries = models.JSONField(default=dict, blank=True)
    transfer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    amount_reversed = models.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    reversal_due = models.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    debt = models.DecimalField(max_digits=10, decimal_places=2, default=ZERO)
    disputed = models.BooleanField(
        default=False, help_text="An open dispute holds the release until it closes."
    )
    # How many times a dispute held a release already owed: each release after one is owed
    # afresh (its own outbox row).
    holds = models.PositiveSmallIntegerField(default=0)
    needs_attention = models.BooleanField(default=False)
    note = models.TextField(blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    # When the order's money went back to the customer (a whole refund or a lost dispute): it
    # goes back once, whichever comes first.
    given_back_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["vendor", "status"]),
            models.Index(fields=["status", "needs_attention"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(debt__gte=0, reversal_due__gte=0, amount_reversed__gte=0),
                name="marketlink_payout_amounts_not_negative",
            )
        ]

    def __str__(self) -> str:
        return f"payout of order {self.order_id} ({self.status})"


class EntryKind(models.TextChoices):
    SALE = "sale", "Sale (+total, when paid)"
    PLATFORM_FEE = "platform_fee", "Platform fee (-fee, when paid)"
    REFUND = "refund", "Refund (-amount given back: a refund or a lost dispute)"
    FEE_REFUND = "fee_refund", "Fee refund (+fee, with a whole refund)"
    TRANSFER = "transfer", "Transfer (-amount sent)"
    REVERSAL = "reversal", "Reversal (+amount taken back)"
    ADJUSTMENT = "adjustment", "Adjustment (staff's settlement of a debt)"


class AppendOnly(Exception):
    """A ledger entry is never changed or deleted: a correction is another entry."""


class EntryQuerySet(models.QuerySet["PayoutEntry"]):
    """Entries are added, never updated or deleted in bulk either."""

    def update(self, **kwargs: Any) -> int:
        raise AppendOnly("Payout entries are never changed: add other entries.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("Payout entries are never deleted: add other entries.")


class PayoutEntry(models.Model):
    """One movement of what the platform owes a vendor, signed from the vendor's point of view.

    Unique per order, kind and provider object (``provider_id``: the transfer, the reversal,
    the refund or the dispute; empty for the sale, the fee and a whole refund), so recording the
    same movement twice (a webhook racing the code that made it) leaves one entry.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vendor = models.ForeignKey(VendorProfile, on_delete=models.PROTECT, related_name="+")
    order = models.ForeignKey(
        RepairOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    provider_id = models.CharField(max_length=255, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The staff user who made an adjustment.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = EntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "payout entries"
        indexes = [models.Index(fields=["vendor", "created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind", "provider_id"],
                condition=~models.Q(kind="adjustment"),
                name="marketlink_payout_entry_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("A payout entry is never changed: add another entry.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("A payout entry is never deleted: add another entry.")
