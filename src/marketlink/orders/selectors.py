"""Reads of orders. An order is visible to its customer, its vendor and admins; to anyone else it
does not exist (404), so no id leaks whose order it is."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Q, QuerySet

from marketlink.accounts.models import Role
from marketlink.accounts.services import account_for_user
from marketlink.exceptions import NotFound
from marketlink.orders.models import RepairOrder
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
