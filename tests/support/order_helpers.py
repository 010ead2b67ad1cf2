"""What tests read and make of orders, once: a placed order, a variant's stock, an order's
history. Each reader takes an order (or variant) as a model, an id, or an API answer."""

from __future__ import annotations

from typing import Any

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.orders.services import order_place
from marketlink.testing.factories import AccountFactory, VariantFactory


def new_order(stock: int = 5) -> RepairOrder:
    """A pending order of a new variant, placed by a new customer through the real service."""
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user,
        customer_email=account.email,
        variant_id=VariantFactory(stock=stock).id,
    )
    return order


def place(account: Any, variant: Any, key: str | None = None) -> tuple[RepairOrder, bool]:
    """``order_place`` for an account's user and address, as the API calls it."""
    return order_place(
        customer=account.user,
        customer_email=account.email,
        variant_id=variant.id,
        idempotency_key=key,
    )


def _order_id(order: Any) -> Any:
    if isinstance(order, RepairOrder):
        return order.pk
    return order["id"] if isinstance(order, dict) else order


def refreshed(order: Any) -> RepairOrder:
    return RepairOrder.objects.get(pk=_order_id(order))


def stock_of(thing: Any) -> int:
    """The stock of a variant, or of an order's variant."""
    if isinstance(thing, RepairOrder):
        variant_id = thing.variant_id
    elif isinstance(thing, dict):
        variant_id = thing["variant"]["id"]
    else:
        variant_id = thing.pk
    return ServiceVariant.objects.get(pk=variant_id).stock


def history(order: Any) -> list[tuple[str, str, str]]:
    """The order's status changes, oldest first: ``(from, to, source)``."""
    return list(
        OrderStatusChange.objects.filter(order_id=_order_id(order))
        .order_by("created_at", "id")
        .values_list("from_status", "to_status", "source")
    )
