"""Reads of the catalogue. Listing queries are built so a page costs a constant number of SQL
queries (the page, its count, its variants) whatever its size.

The rules of what the public sees (:func:`live`, :func:`public`, :func:`bookable`) are written
here once; the stock module (``marketlink.orders.stock``) compiles its booking queries from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from marketlink import conf
from marketlink.catalog.models import Service, ServiceVariant
from marketlink.exceptions import NotFound, PermissionDenied
from marketlink.vendors.models import VendorProfile

NOT_OWNER = "You can only change your own services."


def live(path: str = "") -> Q:
    """Not deleted: a service or variant whose ``archived_at`` is unset. ``path`` applies the rule
    across a relation (``"service__"``)."""
    return Q(**{f"{path}archived_at__isnull": True})


def selling(path: str = "") -> Q:
    """A vendor that sells: switched on by itself, not suspended by staff, and with a user who
    still exists and is active (a deactivated or deleted person sells nothing)."""
    return Q(
        **{
            f"{path}is_active": True,
            f"{path}suspended": False,
            f"{path}user__is_active": True,
        }
    )


def public(path: str = "") -> Q:
    """A service the public sees: live, of a vendor that sells."""
    return live(path) & selling(f"{path}vendor__")


def payable(path: str = "") -> Q:
    """With payouts on, a vendor whose payout account is not ready is left out of the public
    catalogue: its share could not be routed to it. (Booking one of its variants is refused
    with its own 409 by the booking, which reads the flag itself.)"""
    if not conf.get().PAYOUTS_ENABLED:
        return Q()
    return Q(**{f"{path}payouts_ready": True})


def bookable() -> Q:
    """A variant a customer may book: live, of a public service."""
    return live() & public("service__")


def _live_variants() -> QuerySet[ServiceVariant]:
    return ServiceVariant.objects.filter(live())


def _services(rule: Q) -> QuerySet[Service]:
    return (
        Service.objects.filter(rule)
        .select_related("vendor")
        .prefetch_related(Prefetch("variants", queryset=_live_variants()))
    )


def service_list(
    *, search: str | None = None, vendor: uuid.UUID | None = None
) -> QuerySet[Service]:
    """What the public sees: live services of active vendors."""
    services = _services(public() & payable("vendor__"))
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
    return _services(live()).filter(vendor=vendor)


def service_get(*, service_id: uuid.UUID) -> Service:
    service = service_list().filter(pk=service_id).first()
    if service is None:
        raise NotFound("No such service.")
    return service


def service_get_owned(*, service_id: uuid.UUID, user: Any) -> Service:
    service = _services(live()).filter(pk=service_id).first()
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
        ServiceVariant.objects.select_related("service__vendor")
        .filter(bookable(), payable("service__vendor__"), pk=variant_id)
        .first()
    )
    if variant is None:
        raise NotFound("No such variant.")
    return variant


def variant_get_owned(*, variant_id: uuid.UUID, user: Any) -> ServiceVariant:
    variant = (
        _live_variants()
        .select_related("service__vendor")
        .filter(live("service__"), pk=variant_id)
        .first()
    )
    if variant is None:
        raise NotFound("No such variant.")
    if variant.service.vendor.user_id != user.pk:
        raise PermissionDenied(NOT_OWNER)
    return variant


# How many units a customer can book now depends on reservations, which the orders app keeps and
# the catalogue may not import (it is the lower layer): orders registers its answer at start-up.
AvailableStock = Callable[[ServiceVariant], int]
_available_stock: list[AvailableStock] = []


def answer_available_stock_with(answer: AvailableStock) -> None:
    """Make ``answer`` the catalogue's count of a variant's bookable units (``OrdersConfig``)."""
    _available_stock[:] = [answer]


def variant_availability(*, variant_id: uuid.UUID) -> ServiceVariant:
    """The variant annotated with ``available_stock`` and ``is_available`` for AvailabilityOut.
    Without a registered answer (no orders app, so no reservations) that is its stock."""
    variant = variant_get(variant_id=variant_id)
    available = _available_stock[0](variant) if _available_stock else variant.stock
    variant.available_stock = available  # type: ignore[attr-defined]
    variant.is_available = available > 0  # type: ignore[attr-defined]
    return variant
