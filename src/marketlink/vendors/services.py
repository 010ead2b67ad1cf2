from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from marketlink.exceptions import Conflict
from marketlink.vendors.models import VendorProfile

PROFILE_EXISTS = "You already have a vendor profile; update it with PATCH."


def vendor_profile_create(*, user: Any, business_name: str, address: str = "") -> VendorProfile:
    if VendorProfile.objects.filter(user=user).exists():
        raise Conflict(PROFILE_EXISTS)
    try:
        with transaction.atomic():
            return VendorProfile.objects.create(
                user=user, business_name=business_name, address=address
            )
    except IntegrityError:
        raise Conflict(PROFILE_EXISTS) from None


def vendor_profile_update(*, profile: VendorProfile, **changes: Any) -> VendorProfile:
    for name, value in changes.items():
        setattr(profile, name, value)
    if changes:
        profile.save(update_fields=[*changes, "updated_at"])
    return profile
