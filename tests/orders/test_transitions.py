"""The orders state machine, edge by edge: every legal change succeeds and moves the unit of
stock as the table says; every other one is refused and changes nothing. The table is written
here by hand (DESIGN section 4 and docs/orders.md), not read from the code."""

from __future__ import annotations

import itertools

import pytest

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import OrderStatus, OrderStatusChange, RepairOrder
from marketlink.orders.services import order_place
from marketlink.orders.transitions import TransitionRefused, order_transition
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db

# (from, to): how the variant's stock moves. +1: the unit comes back; -1: a unit is taken again.
LEGAL = {
    ("pending", "paid"): 0,
    ("pending", "cancelled"): +1,
    ("pending", "failed"): +1,
    ("paid", "processing"): 0,
    ("paid", "refunded"): +1,
    ("processing", "completed"): 0,
    ("processing", "refunded"): +1,
    # A completed order used its unit: a refund gives money back, not capacity.
    ("completed", "refunded"): 0,
    # A late payment takes a unit again; a late payment refunded never had one.
    ("cancelled", "paid"): -1,
    ("cancelled", "refunded"): 0,
    ("failed", "paid"): -1,
    ("failed", "refunded"): 0,
}
STATUSES = [s.value for s in OrderStatus]


def order_in(status: str) -> RepairOrder:
    account = AccountFactory()
    variant = VariantFactory(stock=5)
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=variant.id
    )
    RepairOrder.objects.filter(pk=order.pk).update(status=status)
    return order


def stock(order: RepairOrder) -> int:
    return ServiceVariant.objects.get(pk=order.variant_id).stock


@pytest.mark.parametrize(("start", "to"), sorted(LEGAL))
def test_a_legal_change_moves_the_unit_as_the_table_says(start, to):
    order = order_in(start)
    before = stock(order)

    changed = order_transition(order_id=order.id, to=to, source="cli", expected=start)

    assert changed.status == to
    assert RepairOrder.objects.get(pk=order.pk).status == to
    assert stock(order) - before == LEGAL[(start, to)]
    [change] = OrderStatusChange.objects.filter(order=order)
    assert (change.from_status, change.to_status, change.source) == (start, to, "cli")


ILLEGAL = [pair for pair in itertools.product(STATUSES, STATUSES) if pair not in LEGAL]


@pytest.mark.parametrize(("start", "to"), ILLEGAL)
def test_any_other_change_is_refused_and_changes_nothing(start, to):
    order = order_in(start)
    before = stock(order)

    with pytest.raises(TransitionRefused):
        order_transition(order_id=order.id, to=to, source="cli", expected=start)

    assert RepairOrder.objects.get(pk=order.pk).status == start
    assert stock(order) == before
    assert not OrderStatusChange.objects.filter(order=order).exists()


def test_a_change_from_a_status_the_order_has_left_is_refused():
    """The caller saw ``pending``; meanwhile the order was cancelled: the caller loses."""
    order = order_in("cancelled")
    before = stock(order)
    with pytest.raises(TransitionRefused):
        order_transition(order_id=order.id, to="paid", source="webhook", expected="pending")
    assert stock(order) == before


def test_a_late_payment_with_no_unit_left_is_refused_and_takes_nothing():
    from marketlink.orders.transitions import NoStockToRetake

    order = order_in("cancelled")
    ServiceVariant.objects.filter(pk=order.variant_id).update(stock=0)
    with pytest.raises(NoStockToRetake):
        order_transition(order_id=order.id, to="paid", source="webhook", expected="cancelled")
    assert RepairOrder.objects.get(pk=order.pk).status == "cancelled"
    assert stock(order) == 0
