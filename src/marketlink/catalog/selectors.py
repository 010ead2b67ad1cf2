"""Reads of the catalogue. Listing queries are built so a page costs a constant number of SQL
queries (the page, its count, its variants) whatever its size."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from marketlink.catalog.models import Service, ServiceVariant
from marketlink.exceptions import NotFound, PermissionDenied
from marketlink.vendors.models import VendorProfile

NOT_OWNER = "You can only change your own services."


def _live_variants() -> QuerySet[ServiceVariant]:
    return ServiceVariant.objects.filter(archived_at__isnull=True)


def _services() -> QuerySet[Service]:
    return (
        Service.objects.filter(archived_at__isnull=True)
        .select_related("vendor")
        .prefetch_related(Prefetch("variants", queryset=_live_variants()))
    )


def service_list(
    *, search: str | None = None, vendor: uuid.UUID | None = None
) -> QuerySet[Service]:
    """What the public sees: live services of active vendors."""
    services = _services().filter(vendor__is_active=True)
    if vendor is not None:
        services = services.filter(vendor_id=vendor)
    if search:
        services = services.filter(
            Q(name__icontains=search)
            | Q(description__icontains=search)
            | Q(vendor__business_name__icontains=search)
        )
    return services


def service_list_of_vendor(*, vendor: VendorProfile) -> QuerySet[Service]:
    return _services().filter(vendor=vendor)


def service_get(*, service_id: uuid.UUID) -> Service:
    service = service_list().filter(pk=service_id).first()
    if service is None:
        raise NotFound("No such service.")
    return service


def service_get_owned(*, service_id: uuid.UUID, user: Any) -> Service:
    service = _services().filter(pk=service_id).first()
    if service is None:
        raise NotFound("No such service.")
    if service.vendor.user_id != user.pk:
        raise PermissionDenied(NOT_OWNER)
    return service


def variant_list(*, service_id: uuid.UUID) -> QuerySet[ServiceVariant]:
    service = service_get(service_id=service_id)
    return _live_variants().filter(service=service)


def variant_get(*, variant_id: uuid.UUID) -> ServiceVariant:
    variant = (
        _live_variants()
        .select_related("service__vendor")
        .filter(pk=variant_id, service__archived_at__isnull=True, service__vendor__is_active=True)
        .first()
    )
    if variant is None:
        raise NotFound("No such variant.")
    return variant


def variant_get_owned(*, variant_id: uuid.UUID, user: Any) -> ServiceVariant:
    variant = (
        _live_variants()
        .select_related("service__vendor")
        .filter(pk=variant_id, service__archived_at__isnull=True)
        .first()
    )
    if variant is None:
        raise NotFound("No such variant.")
    if variant.service.vendor.user_id != user.pk:
        raise PermissionDenied(NOT_OWNER)
    return variant


def variant_availability(*, variant_id: uuid.UUID) -> ServiceVariant:
    """The variant annotated with ``available_stock`` and ``is_available`` for AvailabilityOut."""
    from marketlink.orders.selectors import available_stock

    variant = variant_get(variant_id=variant_id)
    available = available_stock(variant_id=variant.id, stock=variant.stock)
    variant.available_stock = available  # type: ignore[attr-defined]
    variant.is_available = available > 0  # type: ignore[attr-defined]
    return variant
