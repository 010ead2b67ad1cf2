from __future__ import annotations

from decimal import Decimal
from typing import Any

from marketlink.exceptions import NotFound, PermissionDenied
from marketlink.vendors.models import VendorProfile

SUSPENDED = "Your vendor profile is suspended by the site's staff; contact them to lift it."


def vendor_profile_of(user: Any) -> VendorProfile:
    """The caller's profile, with its user and account read in the same query: the profile
    answers show them (``VendorProfileOut.user``)."""
    profile = (
        VendorProfile.objects.select_related("user__marketlink_account").filter(user=user).first()
    )
    if profile is None:
        raise NotFound("You have no vendor profile yet; create one with POST /vendors/profile/.")
    return profile


def vendor_of(user: Any) -> VendorProfile:
    """The caller's profile, active or not; a vendor without one has no catalogue."""
    profile = VendorProfile.objects.filter(user=user).first()
    if profile is None:
        raise PermissionDenied("Create your vendor profile before offering services.")
    return profile


def verified_vendor_of(user: Any) -> VendorProfile:
    """The caller's profile if it may sell; only verified (active) vendors add to a catalogue.
    Suspension is checked first: reactivating would not help a suspended vendor."""
    profile = vendor_of(user)
    if profile.suspended:
        raise PermissionDenied(SUSPENDED)
    if not profile.is_active:
        raise PermissionDenied("Your vendor profile is inactive; reactivate it to sell.")
    return profile


def vendor_payout_terms(vendor_id: Any) -> tuple[bool, Decimal | None]:
    """Whether the vendor can be paid out now, and the platform's fee percentage staff set for
    them (None: the site's own)."""
    ready, percent = (
        VendorProfile.objects.filter(pk=vendor_id).values_list("payouts_ready", "fee_percent").get()
    )
    return bool(ready), percent
