"""Reads of orders. An order is visible to its customer, its vendor and admins; to anyone else it
does not exist (404), so no id leaks whose order it is."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.urls import reverse

from marketlink import conf
from marketlink.accounts.models import Role
from marketlink.accounts.services import account_for_user
from marketlink.catalog.models import ServiceVariant
from marketlink.exceptions import NotFound
from marketlink.orders import payment_hooks
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.transitions import HOLDS_STOCK
from marketlink.vendors.models import VendorProfile


def orders_of_customer(*, user: Any, status: str | None = None) -> QuerySet[RepairOrder]:
    orders = RepairOrder.objects.filter(customer=user)
    return orders.filter(status=status) if status else orders


def orders_of_vendor(*, vendor: VendorProfile, status: str | None = None) -> QuerySet[RepairOrder]:
    orders = RepairOrder.objects.filter(vendor=vendor)
    return orders.filter(status=status) if status else orders


def order_visible_to(*, order_id: uuid.UUID, user: Any) -> RepairOrder:
    orders = RepairOrder.objects.filter(pk=order_id)
    if account_for_user(user).effective_role != Role.ADMIN:
        orders = orders.filter(Q(customer=user) | Q(vendor__user=user))
    order = orders.first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_of_customer(*, order_id: uuid.UUID, user: Any) -> RepairOrder:
    order = RepairOrder.objects.filter(pk=order_id, customer=user).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_of_vendor(*, order_id: uuid.UUID, user: Any) -> RepairOrder:
    order = RepairOrder.objects.filter(pk=order_id, vendor__user=user).first()
    if order is None:
        raise NotFound("No such order.")
    return order


def order_for_refund(*, order_id: uuid.UUID, user: Any) -> RepairOrder:
    """Its vendor or an admin may refund an order; to anyone else it does not exist."""
    orders = RepairOrder.objects.filter(pk=order_id)
    if account_for_user(user).effective_role != Role.ADMIN:
        orders = orders.filter(vendor__user=user)
    order = orders.first()
    if order is None:
        raise NotFound("No such order.")
    return order


# Statuses in which the order's payment has been confirmed.
PAID_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.COMPLETED})


def return_urls(order: RepairOrder, base_url: str) -> tuple[str, str]:
    """Where a hosted checkout sends the customer back: the order's own success and cancel
    pages, wherever the host mounted marketlink's URLconf (or ``SUCCESS_URL``/``CANCEL_URL``)."""
    config = conf.get()
    site = base_url.rstrip("/")
    own_success = site + reverse("marketlink:checkout_succeeded", kwargs={"id": order.id})
    own_cancel = site + reverse("marketlink:checkout_cancelled", kwargs={"id": order.id})
    success = (config.SUCCESS_URL or own_success + "?session_id={CHECKOUT_SESSION_ID}").replace(
        "{order_id}", str(order.id)
    )
    cancel = (config.CANCEL_URL or own_cancel).replace("{order_id}", str(order.id))
    return success, cancel


def order_payment_state(*, order_id: uuid.UUID) -> dict[str, Any]:
    """For the return pages: the order's status, and whether the provider already says its
    checkout is paid (shown to the customer sooner, never acted on without the webhook)."""
    order = RepairOrder.objects.filter(pk=order_id).first()
    if order is None:
        raise NotFound("No such order.")
    provider_says_paid = order.status in PAID_STATUSES
    if order.status == OrderStatus.PENDING:
        provider_says_paid = payment_hooks.get().provider_says_paid(order)
    return {"order_id": order.id, "status": order.status, "provider_says_paid": provider_says_paid}


@dataclass(frozen=True)
class StockLedgerLine:
    """Where one variant's units are: on sale, held by live orders, used by completed ones."""

    variant_id: uuid.UUID
    units_made_available: int
    stock: int
    held: int
    used: int

    @property
    def balanced(self) -> bool:
        return self.stock >= 0 and self.stock + self.held + self.used == self.units_made_available


def stock_ledger(*, variant_ids: Iterable[uuid.UUID] | None = None) -> list[StockLedgerLine]:
    """Every variant's (or the given ones') units, counted from the orders themselves.

    An order that was ever completed used its unit, whatever happened to its money afterwards (a
    refund after completion gives back money, never a unit), so its history is what says so.
    """
    orders = RepairOrder.objects.filter(variant=OuterRef("pk")).order_by().values("variant")
    count = Count("id", distinct=True)
    variants = ServiceVariant.objects.order_by().annotate(
        held=Subquery(
            orders.filter(status__in=HOLDS_STOCK).annotate(n=count).values("n"),
            output_field=IntegerField(),
        ),
        used=Subquery(
            orders.filter(history__to_status=OrderStatus.COMPLETED).annotate(n=count).values("n"),
            output_field=IntegerField(),
        ),
    )
    if variant_ids is not None:
        variants = variants.filter(pk__in=list(variant_ids))
    return [
        StockLedgerLine(
            variant_id=row["id"],
            units_made_available=row["units_made_available"],
            stock=row["stock"],
            held=row["held"] or 0,
            used=row["used"] or 0,
        )
        for row in variants.values("id", "units_made_available", "stock", "held", "used")
    ]


def stock_ledger_mismatches() -> list[StockLedgerLine]:
    """Variants whose units do not add up: a lost or invented unit somewhere."""
    return [line for line in stock_ledger() if not line.balanced]
