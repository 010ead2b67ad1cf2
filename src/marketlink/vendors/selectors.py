from __future__ import annotations

from typing import Any

from marketlink.exceptions import NotFound, PermissionDenied
from marketlink.vendors.models import VendorProfile


def vendor_profile_of(user: Any) -> VendorProfile:
    profile = VendorProfile.objects.filter(user=user).first()
    if profile is None:
        raise NotFound("You have no vendor profile yet; create one with POST /vendors/profile/.")
    return profile


def verified_vendor_of(user: Any) -> VendorProfile:
    """The caller's profile if it may sell; only verified (active) vendors manage a catalogue."""
    profile = VendorProfile.objects.filter(user=user).first()
    if profile is None:
        raise PermissionDenied("Create your vendor profile before offering services.")
    if not profile.is_active:
        raise PermissionDenied("Your vendor profile is inactive; reactivate it to sell.")
    return profile
