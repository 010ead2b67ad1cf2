from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class VendorProfile(models.Model):
    """A business that sells services. It sells while its own ``is_active`` switch is on, staff
    have not suspended it, and its user exists and is active (``catalog.selectors.public``)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # SET_NULL: a host may delete the person (right to erasure) while the business's services and
    # orders, which other people's history points at, stay; a profile without a user sells nothing.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="marketlink_vendor",
    )
    business_name = models.CharField(max_length=200)
    address = models.CharField(max_length=500, blank=True)
    # The vendor's own "paused" switch; staff suspension is a separate field the vendor cannot
    # touch, so a vendor cannot undo it by switching itself back on.
    is_active = models.BooleanField(default=True)
    suspended = models.BooleanField(
        default=False, help_text="Set by staff: a suspended vendor sells nothing."
    )
    suspended_at = models.DateTimeField(null=True, blank=True, editable=False)
    suspension_reason = models.CharField(max_length=500, blank=True)
    # Written by the payouts app from the vendor's connected account (payouts enabled, transfers
    # active): with payouts on, a vendor that is not ready cannot be booked, since its share
    # could not be routed. Kept here so the booking read checks it without importing payouts.
    payouts_ready = models.BooleanField(
        default=False, editable=False, help_text="Its connected account can receive transfers."
    )
    fee_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Staff only: the platform's percentage for this vendor (empty: the site's "
        "PLATFORM_FEE_PERCENT).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(suspended=False, suspended_at__isnull=True)
                | models.Q(suspended=True, suspended_at__isnull=False),
                name="marketlink_vendor_suspended_has_a_time",
            ),
            models.CheckConstraint(
                condition=models.Q(fee_percent__isnull=True)
                | models.Q(fee_percent__gte=0, fee_percent__lte=100),
                name="marketlink_vendor_fee_percent_range",
            ),
        ]

    def __str__(self) -> str:
        return self.business_name
