"""Per-customer limits on live pending orders: one customer cannot hoard a variant's stock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from order_helpers import place, stock_of
from threads import race

from marketlink.orders.limits import PendingOrderLimit
from marketlink.orders.models import RepairOrder
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db


def book(api, user, variant, **kwargs):
    return api.post("/orders/", {"variant_id": str(variant.id)}, user=user, **kwargs)


def _limits(settings, overall=10, per_variant=3):
    settings.MARKETLINK = {
        "PENDING_ORDER_LIMIT": overall,
        "PENDING_ORDER_LIMIT_PER_VARIANT": per_variant,
    }


def test_a_customer_holds_at_most_three_of_one_variant_by_default(api, customer_user):
    variant = VariantFactory(stock=5)
    answers = [book(api, customer_user, variant) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 409]
    refused = answers[-1].json()
    assert refused["success"] is False
    assert refused["code"] == "pending_order_limit_per_variant"
    assert "limit per variant (3)" in refused["message"]
    variant.refresh_from_db()
    assert variant.stock == 2  # the refusal took nothing
    # Someone else can still book what is left.
    assert book(api, AccountFactory().user, variant).status_code == 201


def test_a_customer_holds_at_most_ten_pending_orders_by_default(api, customer_user):
    variants = [VariantFactory(stock=1) for _ in range(11)]
    answers = [book(api, customer_user, variant) for variant in variants]
    assert [a.status_code for a in answers] == [201] * 10 + [409]
    assert answers[-1].json()["code"] == "pending_order_limit"
    assert "the limit (10)" in answers[-1].json()["message"]


def test_paying_or_cancelling_makes_room_again(api, customer_user, settings):
    _limits(settings, overall=2, per_variant=None)
    first, _second = (book(api, customer_user, VariantFactory(stock=1)).json() for _ in range(2))
    assert book(api, customer_user, VariantFactory(stock=1)).status_code == 409
    assert api.post(f"/orders/{first['data']['id']}/cancel/", user=customer_user).status_code == 200
    assert book(api, customer_user, VariantFactory(stock=1)).status_code == 201
    RepairOrder.objects.filter(customer=customer_user).update(status="paid")
    assert book(api, customer_user, VariantFactory(stock=1)).status_code == 201


def test_lapsed_reservations_do_not_count(api, customer_user):
    variant = VariantFactory(stock=10)
    for _ in range(3):
        assert book(api, customer_user, variant).status_code == 201
    RepairOrder.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert book(api, customer_user, variant).status_code == 201


def test_an_idempotent_replay_at_the_limit_answers_the_original_order(api, customer_user):
    variant = VariantFactory(stock=5)
    keyed = book(api, customer_user, variant, headers={"Idempotency-Key": "k-1"})
    book(api, customer_user, variant)
    book(api, customer_user, variant)
    replay = book(api, customer_user, variant, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200
    assert replay.json()["data"]["id"] == keyed.json()["data"]["id"]
    assert replay.headers["Idempotent-Replayed"] == "true"


def test_a_host_lifts_the_limits_with_none(api, customer_user, abuse_limits_off):
    variant = VariantFactory(stock=5)
    assert [book(api, customer_user, variant).status_code for _ in range(5)] == [201] * 5


def test_the_limits_are_settings(api, customer_user, settings):
    _limits(settings, overall=1, per_variant=1)
    assert book(api, customer_user, VariantFactory(stock=5)).status_code == 201
    assert book(api, customer_user, VariantFactory(stock=5)).json()["code"] == (
        "pending_order_limit"
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_bookings_of_one_variant_by_one_customer_stop_at_the_limit(round_, settings):
    _limits(settings, overall=10, per_variant=3)
    variant = VariantFactory(stock=20)
    customer = AccountFactory()
    results = race(*[lambda: place(customer, variant)] * 8)
    placed = [r for r in results if isinstance(r, tuple)]
    assert len(placed) == 3, results
    assert all(isinstance(r, PendingOrderLimit) for r in results if r not in placed), results
    variant.refresh_from_db()
    assert variant.stock == 17
    assert RepairOrder.objects.filter(customer=customer.user).count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_concurrent_bookings_of_many_variants_by_one_customer_stop_at_the_limit(round_, settings):
    _limits(settings, overall=3, per_variant=None)
    variants = [VariantFactory(stock=1) for _ in range(8)]
    customer = AccountFactory()
    results = race(*[lambda v=v: place(customer, v) for v in variants])
    assert sum(isinstance(r, tuple) for r in results) == 3, results
    assert RepairOrder.objects.filter(customer=customer.user, status="pending").count() == 3
    # Each refused booking left its variant's unit where it was.
    assert sum(stock_of(variant) for variant in variants) == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_key_at_the_limit_all_answer_the_order(settings):
    _limits(settings, overall=1, per_variant=1)
    variant = VariantFactory(stock=5)
    customer = AccountFactory()
    results = race(*[lambda: place(customer, variant, key="retry")] * 6)
    assert {order.id for order, _ in results} == {RepairOrder.objects.get().id}, results
    assert sum(created for _, created in results) == 1
