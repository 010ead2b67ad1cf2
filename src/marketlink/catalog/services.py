"""Writes to the catalogue. Callers have already resolved ownership via the selectors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from marketlink import conf
from marketlink.catalog.models import MAX_STOCK, Service, ServiceVariant
from marketlink.exceptions import Conflict, InvalidInput
from marketlink.money import price_problem
from marketlink.vendors.models import VendorProfile


def service_create(*, vendor: VendorProfile, name: str, description: str = "") -> Service:
    return Service.objects.create(vendor=vendor, name=name, description=description)


def service_update(*, service: Service, **changes: Any) -> Service:
    for name, value in changes.items():
        setattr(service, name, value)
    if changes:
        service.save(update_fields=[*changes, "updated_at"])
    return service


@transaction.atomic
def service_archive(*, service: Service) -> None:
    """Hide the service and its variants; orders that refer to them keep their history."""
    now = timezone.now()
    service.variants.filter(archived_at__isnull=True).update(archived_at=now, updated_at=now)
    Service.objects.filter(pk=service.pk).update(archived_at=now, updated_at=now)


def check_price(price: Decimal) -> None:
    """Refuse a price the payment gateway could not charge in the site's currency: the one price
    rule the API and the admin share, so no order is ever booked at such a price."""
    problem = price_problem(price, conf.get().CURRENCY)
    if problem:
        raise InvalidInput.for_field("price", problem)


def variant_create(
    *, service: Service, name: str, price: Decimal, estimated_minutes: int, stock: int = 0
) -> ServiceVariant:
    check_price(price)
    return ServiceVariant.objects.create(
        service=service, name=name, price=price, estimated_minutes=estimated_minutes, stock=stock
    )


@transaction.atomic
def variant_update(
    *, variant: ServiceVariant, stock_adjustment: int | None = None, **changes: Any
) -> ServiceVariant:
    """Apply a vendor's edit under the variant's row lock, the lock a booking's conditional
    UPDATE takes too, so a stock edit during a rush of bookings neither loses nor invents a unit.

    ``stock`` replaces the count of bookable units; ``stock_adjustment`` adds to (or removes
    from) whatever the count is when the lock is taken, which is what a vendor restocking during
    a sale means.
    """
    if "price" in changes:
        check_price(changes["price"])
    locked = ServiceVariant.objects.select_for_update().get(pk=variant.pk)
    if stock_adjustment is not None:
        if locked.stock + stock_adjustment < 0:
            raise Conflict(
                f"Only {locked.stock} units are bookable; cannot remove {-stock_adjustment}."
            )
        if locked.stock + stock_adjustment > MAX_STOCK:
            raise Conflict(
                f"{locked.stock} units are bookable; adding {stock_adjustment} would pass the "
                f"limit of {MAX_STOCK}."
            )
        changes["stock"] = locked.stock + stock_adjustment
    if "stock" in changes:
        changes["units_made_available"] = locked.units_made_available + (
            changes["stock"] - locked.stock
        )
    for name, value in changes.items():
        setattr(locked, name, value)
    if changes:
        locked.save(update_fields=[*changes, "updated_at"])
    return locked


def variant_archive(*, variant: ServiceVariant) -> None:
    now = timezone.now()
    ServiceVariant.objects.filter(pk=variant.pk).update(archived_at=now, updated_at=now)
