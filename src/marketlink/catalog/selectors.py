"""Reads of the catalogue. Listing queries are built so a page costs a constant number of SQL
queries (the page, its count, its variants) whatever its size."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection
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


class BookableVariant(NamedTuple):
    stock: int
    name: str
    price: Decimal
    vendor_id: uuid.UUID
    vendor_name: str


def variant_for_booking(*, variant_id: uuid.UUID) -> BookableVariant:
    """What a booking needs of a live variant of an active vendor, or :class:`NotFound`.

    One hand-written SELECT, because it runs on every booking: building the equivalent ORM query
    (three tables, the models' default ordering) costs about ten times the database's own time.
    """
    variant, service, vendor = ServiceVariant._meta, Service._meta, VendorProfile._meta
    quote = connection.ops.quote_name

    def column(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    sql = (
        f"SELECT v.stock, v.name, v.price, s.{column(service, 'vendor')}, p.business_name "  # noqa: S608
        f"FROM {quote(variant.db_table)} v "
        f"JOIN {quote(service.db_table)} s ON s.id = v.{column(variant, 'service')} "
        f"JOIN {quote(vendor.db_table)} p ON p.id = s.{column(service, 'vendor')} "
        "WHERE v.id = %s AND v.archived_at IS NULL AND s.archived_at IS NULL AND p.is_active"
    )
    uuid_param = variant_id if connection.features.has_native_uuid_field else variant_id.hex
    with connection.cursor() as cursor:
        cursor.execute(sql, [uuid_param])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such variant.")
    stock, name, price, vendor_id, vendor_name = row
    return BookableVariant(
        stock=int(stock),
        name=name,
        # SQLite hands decimals back as floats: rebuild the stored two-place value.
        price=Decimal(str(price)).quantize(Decimal("0.01")),
        vendor_id=vendor_id if isinstance(vendor_id, uuid.UUID) else uuid.UUID(str(vendor_id)),
        vendor_name=vendor_name,
    )


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
