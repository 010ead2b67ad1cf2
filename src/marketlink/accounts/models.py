"""A marketplace role for each user of the host's ``AUTH_USER_MODEL``.

marketlink never asks the host to adopt its own user model: the role and the normalised login email
live in :class:`Account`, one per user. The account's UUID is the user ``id`` the API shows, so
clients see UUIDs whatever primary key the host's user model has.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    CUSTOMER = "CUSTOMER", "Customer"
    VENDOR = "VENDOR", "Vendor"
    ADMIN = "ADMIN", "Admin"


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="marketlink_account"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CUSTOMER)
    # Lower-cased, and unique here even when the host's user model does not make email unique:
    # the constraint is what keeps two racing registrations from sharing an address.
    email = models.EmailField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} ({self.effective_role})"

    @property
    def effective_role(self) -> str:
        """Staff and superusers act as ADMIN whatever role they registered with."""
        if self.user.is_staff or self.user.is_superuser:
            return Role.ADMIN
        return self.role
