from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from order_helpers import stock_of

from marketlink.orders.models import OrderStatus, OrderStatusChange, RepairOrder
from marketlink.orders.services import orders_expire
from marketlink.orders.transitions import order_transition
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory

pytestmark = pytest.mark.django_db


def book(api, user, variant, **kwargs):
    return api.post("/orders/", {"variant_id": str(variant.id)}, user=user, **kwargs)


def test_booking_reserves_a_unit_and_answers_the_seed_shape(api, customer_user):
    variant = VariantFactory(stock=5, price="29.99")
    response = book(api, customer_user, variant)
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Repair order created successfully. Proceed to payment."
    order = body["data"]
    assert set(order) == {
        "id",
        "customer_email",
        "vendor_name",
        "variant",
        "total_amount",
        "amount_refunded",
        "platform_fee",
        "vendor_share",
        "payout",
        "currency",
        "status",
        "payment_method",
        "payment_url",
        "expires_at",
        "created_at",
        "updated_at",
    }
    # The money split is the vendor's and staff's business, not the customer's.
    assert (order["platform_fee"], order["vendor_share"], order["payout"]) == (None, None, None)
    assert order["status"] == "pending"
    assert order["total_amount"] == "29.99"
    assert order["currency"] == "usd"
    assert order["customer_email"] == customer_user.email.lower()
    assert order["vendor_name"] == variant.service.vendor.business_name
    assert order["variant"] == {
        "id": str(variant.id),
        "name": variant.name,
        "price": "29.99",
        "stock": 4,
    }
    assert stock_of(variant) == 4


def test_sold_out_is_409_and_takes_nothing(api, customer_user):
    variant = VariantFactory(stock=1)
    assert book(api, customer_user, variant).status_code == 201
    response = book(api, customer_user, variant)
    assert response.status_code == 409
    assert response.json()["message"] == "This variant is out of stock."
    assert stock_of(variant) == 0
    assert RepairOrder.objects.count() == 1


def test_only_customers_book(api, vendor_user):
    variant = VariantFactory()
    assert book(api, vendor_user, variant).status_code == 403
    assert api.post("/orders/", {"variant_id": str(variant.id)}).status_code == 401


def test_unknown_or_archived_variant_is_404(api, customer_user):
    response = api.post("/orders/", {"variant_id": str(uuid.uuid4())}, user=customer_user)
    assert response.status_code == 404
    variant = VariantFactory(archived_at=timezone.now())
    assert book(api, customer_user, variant).status_code == 404
    inactive = VariantFactory(service__vendor=VendorProfileFactory(is_active=False))
    assert book(api, customer_user, inactive).status_code == 404


def test_idempotency_key_returns_the_same_order(api, customer_user):
    variant = VariantFactory(stock=5)
    headers = {"Idempotency-Key": "abc-123"}
    first = book(api, customer_user, variant, headers=headers)
    second = book(api, customer_user, variant, headers=headers)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert first.json()["data"]["id"] == second.json()["data"]["id"]
    assert stock_of(variant) == 4
    other = VariantFactory()
    assert book(api, customer_user, other, headers=headers).status_code == 409
    # keys are per customer
    someone = AccountFactory().user
    assert book(api, someone, variant, headers=headers).status_code == 201


PRINTABLE = "Idempotency-Key must be 1 to 255 printable characters"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", PRINTABLE),
        ("retry\x01", PRINTABLE),
        ("retry\t1", PRINTABLE),
        ("\u200b", PRINTABLE),
        ("k" * 256, "Idempotency-Key should have at most 255 characters"),
    ],
)
def test_a_malformed_idempotency_key_is_a_400_on_the_header(api, customer_user, key, message):
    variant = VariantFactory(stock=5)
    response = book(api, customer_user, variant, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": message,
        "data": None,
        "errors": [{"loc": ["header", "Idempotency-Key"], "msg": message}],
    }
    assert stock_of(variant) == 5
    assert RepairOrder.objects.count() == 0


def test_an_idempotency_key_of_255_printable_characters_books(api, customer_user):
    key = "é" + "k" * 254
    variant = VariantFactory(stock=5)
    first = book(api, customer_user, variant, headers={"Idempotency-Key": key})
    again = book(api, customer_user, variant, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (201, 200)
    assert stock_of(variant) == 4


def test_lists_filter_and_paginate(api, customer_user, vendor_user):
    variant = VariantFactory(stock=10, service__vendor=vendor_user.marketlink_vendor)
    ids = [book(api, customer_user, variant).json()["data"]["id"] for _ in range(3)]
    api.post(f"/orders/{ids[0]}/cancel/", user=customer_user)
    book(api, AccountFactory().user, VariantFactory())
    mine = api.get("/orders/my/?limit=2", user=customer_user).json()
    assert mine["pagination"] == {"count": 3, "limit": 2, "offset": 0}
    assert (
        api.get("/orders/my/?status=cancelled", user=customer_user).json()["pagination"]["count"]
        == 1
    )
    vendor = api.get("/orders/vendor/?status=pending", user=vendor_user).json()
    assert vendor["pagination"]["count"] == 2
    assert api.get("/orders/my/?status=bogus", user=customer_user).status_code == 400


def test_detail_is_404_for_strangers(api, customer_user, vendor_user, staff_user):
    variant = VariantFactory(service__vendor=vendor_user.marketlink_vendor)
    order_id = book(api, customer_user, variant).json()["data"]["id"]
    assert api.get(f"/orders/{order_id}/", user=customer_user).status_code == 200
    assert api.get(f"/orders/{order_id}/", user=vendor_user).status_code == 200
    assert api.get(f"/orders/{order_id}/", user=staff_user).status_code == 200
    assert api.get(f"/orders/{order_id}/", user=AccountFactory().user).status_code == 404
    assert api.get(f"/orders/{order_id}/", user=VendorProfileFactory().user).status_code == 404


def test_cancel_releases_the_unit_once(api, customer_user):
    variant = VariantFactory(stock=1)
    order_id = book(api, customer_user, variant).json()["data"]["id"]
    assert stock_of(variant) == 0
    response = api.post(f"/orders/{order_id}/cancel/", user=customer_user)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"
    assert stock_of(variant) == 1
    again = api.post(f"/orders/{order_id}/cancel/", user=customer_user)
    assert again.status_code == 409
    assert stock_of(variant) == 1
    history = list(
        OrderStatusChange.objects.filter(order_id=order_id).values_list(
            "from_status", "to_status", "source"
        )
    )
    assert history == [("pending", "cancelled", "api")]


def test_only_the_customer_cancels(api, customer_user):
    order_id = book(api, customer_user, VariantFactory()).json()["data"]["id"]
    assert api.post(f"/orders/{order_id}/cancel/", user=AccountFactory().user).status_code == 404


def test_complete_only_from_processing(api, customer_user, vendor_user):
    variant = VariantFactory(service__vendor=vendor_user.marketlink_vendor)
    order_id = book(api, customer_user, variant).json()["data"]["id"]
    assert api.post(f"/orders/{order_id}/complete/", user=vendor_user).status_code == 409
    order_transition(order_id=order_id, to=OrderStatus.PAID, source="webhook")
    order_transition(order_id=order_id, to=OrderStatus.PROCESSING, source="task")
    assert (
        api.post(f"/orders/{order_id}/complete/", user=VendorProfileFactory().user).status_code
        == 404
    )
    done = api.post(f"/orders/{order_id}/complete/", user=vendor_user)
    assert done.status_code == 200
    assert done.json()["data"]["status"] == "completed"
    assert stock_of(variant) == 4  # a completed order keeps its unit


def test_illegal_transitions_are_refused(customer_user):
    variant = VariantFactory(stock=2)
    order = RepairOrder.objects.create(
        customer=customer_user,
        vendor=variant.service.vendor,
        variant=variant,
        customer_email="c@example.com",
        vendor_name="v",
        variant_name="n",
        unit_price="1.00",
        stock_after_reservation=1,
        total_amount="1.00",
        currency="usd",
        payment_method="dummy",
        expires_at=timezone.now(),
    )
    from marketlink.orders.transitions import TransitionRefused

    with pytest.raises(TransitionRefused):
        order_transition(order_id=order.id, to=OrderStatus.COMPLETED, source="api")
    with pytest.raises(TransitionRefused):
        order_transition(
            order_id=order.id, to=OrderStatus.PAID, source="api", expected=OrderStatus.PROCESSING
        )


def test_expiry_job_cancels_lapsed_reservations(api, customer_user):
    variant = VariantFactory(stock=2)
    lapsed = book(api, customer_user, variant).json()["data"]["id"]
    live = book(api, customer_user, variant).json()["data"]["id"]
    RepairOrder.objects.filter(pk=lapsed).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert orders_expire() == 1
    assert orders_expire() == 0
    assert RepairOrder.objects.get(pk=lapsed).status == "cancelled"
    assert RepairOrder.objects.get(pk=live).status == "pending"
    assert stock_of(variant) == 1
    assert OrderStatusChange.objects.get(order_id=lapsed).source == "task"


def test_a_late_expiry_job_never_holds_stock(api, customer_user):
    """The job has not run, yet availability and booking already treat a lapsed unit as free."""
    variant = VariantFactory(stock=1)
    lapsed = book(api, customer_user, variant).json()["data"]["id"]
    RepairOrder.objects.filter(pk=lapsed).update(expires_at=timezone.now() - timedelta(seconds=1))
    availability = api.get(f"/services/variants/{variant.id}/availability/", user=customer_user)
    assert availability.json()["data"]["available_stock"] == 1
    assert availability.json()["data"]["is_available"] is True
    other = AccountFactory().user
    response = book(api, other, variant)
    assert response.status_code == 201
    assert RepairOrder.objects.get(pk=lapsed).status == "cancelled"
    assert stock_of(variant) == 0


def test_vendor_stock_edit_sets_available_units(api, customer_user, vendor_user):
    variant = VariantFactory(stock=1, service__vendor=vendor_user.marketlink_vendor)
    book(api, customer_user, variant)
    api.patch(f"/services/variants/{variant.id}/", {"stock": 3}, user=vendor_user)
    assert stock_of(variant) == 3
    assert book(api, customer_user, variant).json()["data"]["variant"]["stock"] == 2
