"""The catalog's ledger of units made available, and the stock check built on it: every unit is
on sale, held by a live order, or used by a completed one, through bookings, cancels, payment,
completion, refunds and vendor edits; a unit that vanishes shows up as a mismatch."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketlink.catalog.models import ServiceVariant
from marketlink.catalog.services import variant_create, variant_update
from marketlink.orders.selectors import stock_ledger, stock_ledger_mismatches
from marketlink.orders.services import order_place
from marketlink.orders.transitions import order_transition
from marketlink.testing.factories import AccountFactory, ServiceFactory, VariantFactory

pytestmark = pytest.mark.django_db


def place(variant: ServiceVariant):
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=variant.id
    )
    return order


def walk(order, *statuses: str) -> None:
    for to in statuses:
        order_transition(order_id=order.id, to=to, source="cli")


def test_units_add_up_through_an_orders_whole_life():
    variant = variant_create(
        service=ServiceFactory(),
        name="Screen",
        price=Decimal("10.00"),
        estimated_minutes=30,
        stock=6,
    )
    walk(place(variant), "cancelled")
    walk(place(variant), "paid", "processing", "completed")
    walk(place(variant), "paid", "processing", "completed", "refunded")
    walk(place(variant), "paid", "refunded")
    place(variant)

    [line] = stock_ledger(variant_ids=[variant.id])

    assert (line.units_made_available, line.stock, line.held, line.used) == (6, 3, 1, 2)
    assert line.balanced
    assert stock_ledger_mismatches() == []


def test_vendor_stock_edits_move_the_units_made_available():
    variant = VariantFactory(stock=3)
    place(variant)
    variant_update(variant=variant, stock_adjustment=+4)
    variant_update(variant=variant, stock=1)

    [line] = stock_ledger(variant_ids=[variant.id])

    assert (line.units_made_available, line.stock, line.held) == (2, 1, 1)
    assert stock_ledger_mismatches() == []


def test_a_unit_that_vanishes_is_a_mismatch():
    variant = VariantFactory(stock=3)
    place(variant)
    ServiceVariant.objects.filter(pk=variant.pk).update(stock=0)  # a unit lost by a bug

    [line] = stock_ledger_mismatches()

    assert line.variant_id == variant.id
    assert (line.stock, line.held, line.units_made_available) == (0, 1, 3)
