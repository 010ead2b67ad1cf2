"""``/services/``: the public catalogue and its owners' edits.

Literal paths (``my/``, ``variants/...``) are declared before ``{id}/`` so they are matched first.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Status

from marketlink.accounts.auth import AuthedRequest, customers, vendors
from marketlink.catalog import selectors, services
from marketlink.catalog.schemas import (
    AvailabilityOut,
    ServiceIn,
    ServiceOut,
    ServicePatch,
    ServiceQuery,
    VariantIn,
    VariantOut,
    VariantPatch,
)
from marketlink.envelope import Envelope, PageEnvelope, PageQuery, created, ok, paginate, responses
from marketlink.vendors.selectors import vendor_of, verified_vendor_of

router = Router(tags=["services"])

WRITE_ERRORS = (401, 403, 404)


@router.get("/", response=responses(200, PageEnvelope[ServiceOut]))
def service_list(request: HttpRequest, query: Query[ServiceQuery]) -> dict[str, Any]:
    return paginate(selectors.service_list(search=query.search, vendor=query.vendor), query)


@router.post("/", response=responses(201, Envelope[ServiceOut], 401, 403, body=True), auth=vendors)
def service_create(request: AuthedRequest, payload: ServiceIn) -> Status[dict[str, Any]]:
    service = services.service_create(vendor=verified_vendor_of(request.auth), **payload.dict())
    return created(service, "Service created.")


@router.get("/my/", response=responses(200, PageEnvelope[ServiceOut], 401, 403), auth=vendors)
def service_list_mine(request: AuthedRequest, page: Query[PageQuery]) -> dict[str, Any]:
    vendor = vendor_of(request.auth)  # an inactive vendor may not sell but still sees its own
    return paginate(selectors.service_list_of_vendor(vendor=vendor), page)


@router.patch(
    "/variants/{id}/",
    response=responses(200, Envelope[VariantOut], *WRITE_ERRORS, 409, body=True),
    auth=vendors,
)
def variant_update(request: AuthedRequest, id: uuid.UUID, payload: VariantPatch) -> dict[str, Any]:
    variant = selectors.variant_get_owned(variant_id=id, user=request.auth)
    return ok(services.variant_update(variant=variant, **payload.changes()), "Variant updated.")


@router.delete(
    "/variants/{id}/", response=responses(200, Envelope[None], *WRITE_ERRORS), auth=vendors
)
def variant_delete(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    services.variant_archive(variant=selectors.variant_get_owned(variant_id=id, user=request.auth))
    return ok(None, "Variant deleted.")


@router.get(
    "/variants/{id}/availability/",
    response=responses(200, Envelope[AvailabilityOut], 401, 403, 404),
    auth=customers,
)
def variant_availability(request: HttpRequest, id: uuid.UUID) -> dict[str, Any]:
    return ok(selectors.variant_availability(variant_id=id))


@router.get("/{id}/", response=responses(200, Envelope[ServiceOut], 404))
def service_detail(request: HttpRequest, id: uuid.UUID) -> dict[str, Any]:
    return ok(selectors.service_get(service_id=id))


@router.patch(
    "/{id}/", response=responses(200, Envelope[ServiceOut], *WRITE_ERRORS, body=True), auth=vendors
)
def service_update(request: AuthedRequest, id: uuid.UUID, payload: ServicePatch) -> dict[str, Any]:
    service = selectors.service_get_owned(service_id=id, user=request.auth)
    return ok(services.service_update(service=service, **payload.changes()), "Service updated.")


@router.delete("/{id}/", response=responses(200, Envelope[None], *WRITE_ERRORS), auth=vendors)
def service_delete(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    services.service_archive(service=selectors.service_get_owned(service_id=id, user=request.auth))
    return ok(None, "Service deleted.")


@router.get("/{id}/variants/", response=responses(200, PageEnvelope[VariantOut], 404))
def variant_list(request: HttpRequest, id: uuid.UUID, page: Query[PageQuery]) -> dict[str, Any]:
    return paginate(selectors.variant_list(service_id=id), page)


@router.post(
    "/{id}/variants/",
    response=responses(201, Envelope[VariantOut], *WRITE_ERRORS, body=True),
    auth=vendors,
)
def variant_create(
    request: AuthedRequest, id: uuid.UUID, payload: VariantIn
) -> Status[dict[str, Any]]:
    service = selectors.service_get_owned(service_id=id, user=request.auth)
    verified_vendor_of(request.auth)
    return created(services.variant_create(service=service, **payload.dict()), "Variant created.")
