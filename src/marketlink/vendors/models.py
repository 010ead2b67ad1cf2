from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class VendorProfile(models.Model):
    """A business that sells services. Active profiles are "verified" and may sell."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # PROTECT: a vendor's user cannot vanish from under its services and orders.
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="marketlink_vendor"
    )
    business_name = models.CharField(max_length=200)
    address = models.CharField(max_length=500, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["business_name"]

    def __str__(self) -> str:
        return self.business_name
