"""``/vendors/profile/``: the calling vendor's business profile."""

from __future__ import annotations

from typing import Any

from ninja import Router, Status

from marketlink.accounts.auth import AuthedRequest, vendors
from marketlink.envelope import Envelope, created, ok, responses
from marketlink.vendors import services
from marketlink.vendors.schemas import VendorProfileIn, VendorProfileOut, VendorProfilePatch
from marketlink.vendors.selectors import vendor_profile_of

router = Router(tags=["vendors"], auth=vendors)


@router.post(
    "/profile/", response=responses(201, Envelope[VendorProfileOut], 401, 403, 409, body=True)
)
def profile_create(request: AuthedRequest, payload: VendorProfileIn) -> Status[dict[str, Any]]:
    profile = services.vendor_profile_create(user=request.auth, **payload.dict())
    return created(profile, "Vendor profile created.")


@router.get("/profile/", response=responses(200, Envelope[VendorProfileOut], 401, 403, 404))
def profile_detail(request: AuthedRequest) -> dict[str, Any]:
    return ok(vendor_profile_of(request.auth))


@router.patch(
    "/profile/", response=responses(200, Envelope[VendorProfileOut], 401, 403, 404, body=True)
)
def profile_update(request: AuthedRequest, payload: VendorProfilePatch) -> dict[str, Any]:
    profile = services.vendor_profile_update(
        profile=vendor_profile_of(request.auth), **payload.changes()
    )
    return ok(profile, "Vendor profile updated.")
