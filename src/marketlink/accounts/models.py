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


# ADMIN is never stored: it is what the host's staff flags say at the time of each request, so
# taking ``is_staff`` away takes the marketplace powers with it.
STORED_ROLES = [(role.value, role.label) for role in (Role.CUSTOMER, Role.VENDOR)]

# ``.invalid`` is reserved (RFC 2606): no real address ends so, and nothing can be delivered there.
PLACEHOLDER_SUFFIX = "@invalid"
EMAIL_MAX_LENGTH = 254


def placeholder_email(user_pk: object) -> str:
    """The unique stand-in address of an account whose user has no usable address of its own."""
    return f"{user_pk}{PLACEHOLDER_SUFFIX}"


class Account(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="marketlink_account"
    )
    role = models.CharField(max_length=16, choices=STORED_ROLES, default=Role.CUSTOMER)
    # Lower-cased, and unique here even when the host's user model does not make email unique:
    # the constraint is what keeps two racing registrations from sharing an address.
    email = models.EmailField(max_length=EMAIL_MAX_LENGTH, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(role__in=[Role.CUSTOMER, Role.VENDOR]),
                name="marketlink_account_role_is_stored_role",
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.effective_role})"

    @property
    def effective_role(self) -> str:
        """Staff and superusers act as ADMIN whatever role they registered with, and only while
        they are staff."""
        if self.user.is_staff or self.user.is_superuser:
            return Role.ADMIN
        return self.role

    @property
    def has_email(self) -> bool:
        """Whether marketlink knows an address for this user to book with (not a placeholder)."""
        return not self.email.endswith(PLACEHOLDER_SUFFIX)
