from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from marketlink.exceptions import Conflict
from marketlink.vendors.models import VendorProfile

logger = logging.getLogger(__name__)

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


def suspension_stamp(profile: VendorProfile) -> None:
    """Keep ``suspended_at`` in step with ``suspended`` on a profile about to be saved (the admin
    form edits the flag): set when a suspension starts, kept while it lasts, cleared when lifted."""
    if profile.suspended and profile.suspended_at is None:
        profile.suspended_at = timezone.now()
        logger.info("vendor %s suspended by staff", profile.pk)
    elif not profile.suspended and profile.suspended_at is not None:
        profile.suspended_at = None
        logger.info("vendor %s suspension lifted by staff", profile.pk)


def vendors_suspend(profiles: QuerySet[VendorProfile]) -> int:
    """Suspend vendors (staff): they sell nothing until staff lift it. Those already suspended
    keep the time and reason of their suspension. Returns how many were suspended now."""
    ids, count = _set_suspended(profiles, True)
    logger.info("vendors suspended by staff: %s", ", ".join(str(pk) for pk in ids))
    return count


def vendors_reinstate(profiles: QuerySet[VendorProfile]) -> int:
    """Lift staff suspensions; the vendor's own ``is_active`` switch is left as it was."""
    ids, count = _set_suspended(profiles, False)
    logger.info("vendor suspensions lifted by staff: %s", ", ".join(str(pk) for pk in ids))
    return count


def _set_suspended(profiles: QuerySet[VendorProfile], suspended: bool) -> tuple[list[Any], int]:
    """Flip ``suspended`` on the profiles not already so, in one UPDATE that re-checks it (a
    concurrent flip is not counted twice); returns their ids and how many changed."""
    now = timezone.now()
    ids = list(profiles.filter(suspended=not suspended).values_list("pk", flat=True))
    count = VendorProfile.objects.filter(pk__in=ids, suspended=not suspended).update(
        suspended=suspended, suspended_at=now if suspended else None, updated_at=now
    )
    return ids, count
