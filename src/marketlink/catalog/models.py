"""Services and their priced, stock-limited variants.

Deleting through the API *archives* (``archived_at``): orders keep pointing at what was bought, so
history is never erased and no delete can fail on a foreign key. Archived rows disappear from every
public read and cannot be booked.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import models

from marketlink.vendors.models import VendorProfile

# The largest stock a variant may hold, set or adjusted: well inside PostgreSQL's integer
# (2**31 - 1), so no edit the API or the admin accepts can overflow the column.
MAX_STOCK = 2_000_000_000


class Service(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    vendor = models.ForeignKey(VendorProfile, on_delete=models.PROTECT, related_name="services")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, max_length=5000)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["vendor", "archived_at"])]

    def __str__(self) -> str:
        return self.name


class ServiceVariant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="variants")
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    estimated_minutes = models.PositiveIntegerField()
    # Units that can still be booked now. The database refuses a negative value, so no code path,
    # however buggy or racy, can oversell.
    stock = models.IntegerField(default=0)
    # Every unit ever put on sale: the first stock plus each later change a vendor or staff made.
    # Bookings and cancels move units between ``stock`` and orders and never touch it, so it is
    # the ledger stock is checked against: stock + units held by live orders + units used by
    # completed ones always equals it (``marketlink doctor`` and the fault tests check that).
    units_made_available = models.BigIntegerField(default=0, editable=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["price", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(stock__gte=0), name="marketlink_variant_stock_not_negative"
            ),
            models.CheckConstraint(
                condition=models.Q(price__gt=Decimal("0")), name="marketlink_variant_price_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.service.name} / {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new variant's first stock is its first units made available, however it is created
        # (the services, the admin's add form, a host's own code or factories).
        if self._state.adding and not self.units_made_available:
            self.units_made_available = self.stock
        super().save(*args, **kwargs)
