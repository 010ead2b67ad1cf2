"""What a booking costs the database, counted statement by statement (it is benchmarked), and
what the reclaim of lapsed reservations does on the way.

A booking must take a unit (only if the variant has one and is bookable) and write its order,
atomically: on PostgreSQL one statement does both, copying the variant's name, price and vendor
(``WITH variant AS (SELECT …), taken AS (UPDATE … RETURNING) INSERT … SELECT``). That is the
floor, and a booking with a free unit runs exactly that. One that finds no free unit reads why
(not bookable: 404; sold out: 409; units held by lapsed reservations), then releases every
lapsed reservation at once: a constant number of statements, however many there are. Counted
at the top level, as a site runs them (transactional tests: no test savepoints);
``BEGIN``/``COMMIT`` aside.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from order_helpers import history, stock_of

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import OrderStatusChange, RepairOrder
from marketlink.orders.services import order_place
from marketlink.orders.signals import order_cancelled
from marketlink.testing.factories import AccountFactory, VariantFactory
from marketlink.vendors.models import VendorProfile

pytestmark = pytest.mark.django_db(transaction=True)

POSTGRES = connection.vendor == "postgresql"
LAPSED = 3


def _sent(queries):
    """The statements, transaction control aside (SQLite's is logged, PostgreSQL's is not)."""
    control = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(control)]


def _book(variant):
    """A booking through the service, and the statements it sent."""
    account = AccountFactory()
    with CaptureQueriesContext(connection) as queries:
        order, created = order_place(
            customer=account.user, customer_email=account.email, variant_id=variant.id
        )
    assert created
    return order, _sent(queries)


def _lapse(variant, count):
    """``count`` pending orders of the variant whose reservations lapsed, holding its last units."""
    orders = [_book(variant)[0] for _ in range(count)]
    RepairOrder.objects.filter(pk__in=[o.pk for o in orders]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return orders


def test_a_booking_with_a_free_unit_is_one_statement_on_postgresql(abuse_limits_off):
    variant = VariantFactory(stock=2, price="19.99")
    variant.refresh_from_db()

    order, statements = _book(variant)

    if POSTGRES:
        [write] = statements
        assert write.startswith("WITH variant (")
        assert "UPDATE" in write
        assert "INSERT INTO" in write
    else:  # the read of what the order copies, the conditional UPDATE, the INSERT
        assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "INSERT"], statements
    stored = RepairOrder.objects.get(pk=order.pk)
    assert (stored.variant_name, stored.unit_price, stored.total_amount) == (
        variant.name,
        variant.price,
        variant.price,
    )
    assert (stored.vendor_id, stored.vendor_name) == (
        variant.service.vendor_id,
        variant.service.vendor.business_name,
    )
    assert order.stock_after_reservation == stored.stock_after_reservation == 1
    assert order.unit_price == variant.price
    assert stock_of(variant) == 1


def test_reclaiming_lapsed_reservations_costs_the_same_however_many_there_are(
    abuse_limits_off,
):
    """No free unit, three lapsed reservations: the failed write, the reads that say why (the
    variant, any lapsed reservation), then in one transaction the lapsed rows locked, cancelled
    in one UPDATE, their history in one INSERT, their units back in one UPDATE, and the write
    again (without the variant's read: the order holds its copy now)."""
    variant = VariantFactory(stock=LAPSED)
    lapsed = _lapse(variant, LAPSED)
    heard = []
    order_cancelled.connect(receiver := lambda sender, order, **kw: heard.append(kw | {"o": order}))
    try:
        order, statements = _book(variant)
    finally:
        order_cancelled.disconnect(receiver)

    kinds = [s.split()[0] for s in statements]
    failed_write = ["WITH"] if POSTGRES else ["SELECT"]  # SQLite reads stock 0 and stops there
    why = ["SELECT", "SELECT"]  # the variant, then any lapsed reservation
    release = ["SELECT", "UPDATE", "INSERT", "UPDATE"]  # locked, cancelled, history, units back
    write = ["WITH"] if POSTGRES else ["UPDATE", "INSERT"]
    assert kinds == [*failed_write, *why, *release, *write], kinds
    if POSTGRES:
        assert statements[3].endswith("FOR UPDATE")
        assert statements[-1].startswith("WITH taken AS (UPDATE")
    # Every lapsed reservation released, its unit back, one of them taken by the new order.
    assert order.stock_after_reservation == LAPSED - 1 == stock_of(variant)
    for old in lapsed:
        assert history(old) == [("pending", "cancelled", "api")]
    notes = OrderStatusChange.objects.filter(order__in=lapsed).values_list("note", flat=True)
    assert set(notes) == {"reservation expired (reclaimed at booking)"}
    assert RepairOrder.objects.filter(variant=variant, status="cancelled").count() == LAPSED
    # Each release was announced once committed, as a cancel is, with the order as written.
    assert sorted(h["o"].pk for h in heard) == sorted(o.pk for o in lapsed)
    assert {(h["o"].status, h["previous"], h["source"]) for h in heard} == {
        ("cancelled", "pending", "api")
    }


def _archive(variant):
    ServiceVariant.objects.filter(pk=variant.pk).update(archived_at=timezone.now())


def _suspend_vendor(variant):
    vendor = variant.service.vendor
    VendorProfile.objects.filter(pk=vendor.pk).update(suspended=True, suspended_at=timezone.now())


def _deactivate_vendor_user(variant):
    type(variant.service.vendor.user).objects.filter(pk=variant.service.vendor.user_id).update(
        is_active=False
    )


@pytest.mark.parametrize("unbook", [_archive, _suspend_vendor, _deactivate_vendor_user])
def test_a_variant_that_is_not_bookable_is_404_and_keeps_its_units(abuse_limits_off, unbook):
    """The one-statement write takes a unit only for a variant it also copies the order from:
    one whose vendor stopped selling (still live itself) never loses a unit without an order."""
    from marketlink.exceptions import NotFound

    variant = VariantFactory(stock=2)
    unbook(variant)
    account = AccountFactory()
    with pytest.raises(NotFound):
        order_place(customer=account.user, customer_email=account.email, variant_id=variant.id)
    assert stock_of(variant) == 2
    assert not RepairOrder.objects.exists()


def test_a_sold_out_booking_reads_why_after_the_failed_write(abuse_limits_off):
    """The write finds no unit; the variant's read and the check for lapsed reservations say it
    is sold out. (In a rush, a booking that finds the lock busy runs only the two reads.)"""
    from marketlink.exceptions import Conflict

    variant = VariantFactory(stock=0)
    account = AccountFactory()
    with CaptureQueriesContext(connection) as queries, pytest.raises(Conflict) as refused:
        order_place(customer=account.user, customer_email=account.email, variant_id=variant.id)
    assert refused.value.message == "This variant is out of stock."
    statements = _sent(queries)
    assert len(statements) == 3, statements
    assert statements[0].startswith("WITH variant (" if POSTGRES else "SELECT")
    assert "\"status\" = 'pending'" in statements[-1]  # any lapsed reservation?


def test_the_per_customer_limits_add_a_read_the_customer_lock_and_one_count(customer_user):
    """With the limits on (the default), the variant is read first (one that cannot be booked
    costs no lock), then the customer's account row is locked and their live orders counted
    once, before the write, which no longer reads the variant."""
    variant = VariantFactory(stock=2)
    with CaptureQueriesContext(connection) as queries:
        order, created = order_place(
            customer=customer_user, customer_email="c@example.com", variant_id=variant.id
        )
    statements = _sent(queries)
    assert '"marketlink_catalog_servicevariant"."stock"' in statements[0]
    assert "COUNT(" in statements[2]
    if POSTGRES:
        assert len(statements) == 4, statements
        assert statements[1].endswith("FOR UPDATE")
        assert statements[3].startswith("WITH taken AS (UPDATE")
    assert (created, order.stock_after_reservation, stock_of(variant)) == (True, 1, 1)
