from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, transaction

from marketlink.catalog.models import Service, ServiceVariant
from marketlink.testing.factories import (
    AccountFactory,
    ServiceFactory,
    VariantFactory,
    VendorProfileFactory,
)

pytestmark = pytest.mark.django_db

VARIANT = {"name": "Standard", "price": "29.99", "estimated_minutes": 15, "stock": 5}


def test_verified_vendor_creates_service_and_variant(api, vendor_user):
    service = api.post("/services/", {"name": "Oil Change"}, user=vendor_user)
    assert service.status_code == 201
    data = service.json()["data"]
    assert data["variants"] == []
    assert data["vendor"]["business_name"]
    variant = api.post(f"/services/{data['id']}/variants/", VARIANT, user=vendor_user)
    assert variant.status_code == 201
    v = variant.json()["data"]
    assert v["service"] == data["id"]
    assert v["price"] == "29.99"
    assert set(v) == {
        "id",
        "service",
        "name",
        "price",
        "estimated_minutes",
        "stock",
        "created_at",
        "updated_at",
    }


def test_vendor_without_profile_cannot_sell(api):
    user = AccountFactory(role="VENDOR").user
    response = api.post("/services/", {"name": "Oil"}, user=user)
    assert response.status_code == 403
    assert "vendor profile" in response.json()["message"]


def test_inactive_vendor_cannot_create_services(api):
    profile = VendorProfileFactory(is_active=False)
    assert api.post("/services/", {"name": "Oil"}, user=profile.user).status_code == 403


def test_customer_cannot_create_services(api, customer_user):
    assert api.post("/services/", {"name": "Oil"}, user=customer_user).status_code == 403


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("price", "0", "price should be greater than 0"),
        ("price", "-5", "price should be greater than 0"),
        ("price", "1.999", "price"),
        ("price", "abc", "price"),
        ("estimated_minutes", 0, "estimated_minutes should be greater than 0"),
        ("stock", -1, "stock should be greater than or equal to 0"),
        ("name", "", "name"),
    ],
)
def test_variant_validation(api, vendor_user, field, value, message):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    response = api.post(
        f"/services/{service.id}/variants/", {**VARIANT, field: value}, user=vendor_user
    )
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert response.json()["errors"][0]["loc"] == ["body", field]
    assert not ServiceVariant.objects.exists()


def test_only_the_owner_writes(api, vendor_user):
    other = ServiceFactory()
    variant = VariantFactory(service=other)
    assert (
        api.patch(f"/services/{other.id}/", {"name": "Mine"}, user=vendor_user).status_code == 403
    )
    assert api.delete(f"/services/{other.id}/", user=vendor_user).status_code == 403
    assert api.post(f"/services/{other.id}/variants/", VARIANT, user=vendor_user).status_code == 403
    assert (
        api.patch(f"/services/variants/{variant.id}/", {"stock": 0}, user=vendor_user).status_code
        == 403
    )
    assert api.delete(f"/services/variants/{variant.id}/", user=vendor_user).status_code == 403
    variant.refresh_from_db()
    assert variant.stock == 5


def test_owner_updates_service_and_variant(api, vendor_user):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    variant = VariantFactory(service=service)
    response = api.patch(f"/services/{service.id}/", {"description": "Better"}, user=vendor_user)
    assert response.json()["data"]["description"] == "Better"
    response = api.patch(
        f"/services/variants/{variant.id}/", {"price": "10.50", "stock": 7}, user=vendor_user
    )
    assert response.status_code == 200
    assert response.json()["data"]["price"] == "10.50"
    assert response.json()["data"]["stock"] == 7


def test_public_list_paginates_filters_and_searches(api):
    garage = VendorProfileFactory(business_name="Speedy Garage")
    for n in range(5):
        VariantFactory(service=ServiceFactory(vendor=garage, name=f"Wash {n}"))
    ServiceFactory(name="Brake job")
    ServiceFactory(vendor=VendorProfileFactory(is_active=False), name="Hidden")

    page = api.get("/services/?limit=2&offset=1").json()
    assert page["pagination"] == {"count": 6, "limit": 2, "offset": 1}
    assert len(page["data"]) == 2
    by_vendor = api.get(f"/services/?vendor={garage.id}").json()
    assert by_vendor["pagination"]["count"] == 5
    assert api.get("/services/?search=brake").json()["pagination"]["count"] == 1
    assert api.get("/services/?search=speedy").json()["pagination"]["count"] == 5
    assert api.get("/services/?search=hidden").json()["pagination"]["count"] == 0


def test_page_size_is_capped(api, settings):
    settings.MARKETLINK = {"MAX_PAGE_SIZE": 3}
    for _ in range(4):
        ServiceFactory()
    page = api.get("/services/?limit=50").json()
    assert page["pagination"]["limit"] == 3
    assert len(page["data"]) == 3


@pytest.mark.parametrize("page_size", [1, 10, 40])
def test_listing_costs_constant_queries(api, django_assert_num_queries, page_size):
    for _ in range(page_size):
        service = ServiceFactory()
        VariantFactory.create_batch(3, service=service)
    # the page, its variants, the count
    with django_assert_num_queries(3):
        response = api.get(f"/services/?limit={page_size}")
    assert len(response.json()["data"]) == page_size
    assert all(len(s["variants"]) == 3 for s in response.json()["data"])


def test_my_services_lists_only_mine(api, vendor_user):
    ServiceFactory.create_batch(2, vendor=vendor_user.marketlink_vendor)
    ServiceFactory()
    response = api.get("/services/my/", user=vendor_user)
    assert response.json()["pagination"]["count"] == 2


def test_delete_archives_and_keeps_rows(api, vendor_user):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    variant = VariantFactory(service=service)
    assert api.delete(f"/services/{service.id}/", user=vendor_user).status_code == 200
    assert api.get(f"/services/{service.id}/").status_code == 404
    assert api.get("/services/").json()["pagination"]["count"] == 0
    assert Service.objects.filter(pk=service.pk, archived_at__isnull=False).exists()
    assert ServiceVariant.objects.filter(pk=variant.pk, archived_at__isnull=False).exists()
    assert api.delete(f"/services/{service.id}/", user=vendor_user).status_code == 404


def test_delete_variant_hides_it(api, vendor_user):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    keep, drop = VariantFactory(service=service), VariantFactory(service=service)
    assert api.delete(f"/services/variants/{drop.id}/", user=vendor_user).status_code == 200
    listed = api.get(f"/services/{service.id}/variants/").json()["data"]
    assert [v["id"] for v in listed] == [str(keep.id)]


def test_unknown_ids_are_404_and_bad_ids_400(api):
    assert api.get(f"/services/{uuid.uuid4()}/").status_code == 404
    assert api.get(f"/services/{uuid.uuid4()}/variants/").status_code == 404
    bad = api.get("/services/not-a-uuid/")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["loc"] == ["path", "id"]


def test_availability_is_for_customers(api, customer_user, vendor_user):
    variant = VariantFactory(stock=2)
    response = api.get(f"/services/variants/{variant.id}/availability/", user=customer_user)
    assert response.status_code == 200
    assert response.json()["data"]["is_available"] is True
    assert response.json()["data"]["available_stock"] == 2
    assert api.get(f"/services/variants/{variant.id}/availability/").status_code == 401
    assert (
        api.get(f"/services/variants/{variant.id}/availability/", user=vendor_user).status_code
        == 403
    )


def test_database_refuses_negative_stock():
    variant = VariantFactory(stock=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        ServiceVariant.objects.filter(pk=variant.pk).update(stock=-1)


def test_stock_adjustment_is_relative_and_cannot_go_negative(api, vendor_user):
    variant = VariantFactory(stock=4, service__vendor=vendor_user.marketlink_vendor)
    url = f"/services/variants/{variant.id}/"
    assert api.patch(url, {"stock_adjustment": 3}, user=vendor_user).json()["data"]["stock"] == 7
    assert api.patch(url, {"stock_adjustment": -2}, user=vendor_user).json()["data"]["stock"] == 5
    refused = api.patch(url, {"stock_adjustment": -6}, user=vendor_user)
    assert refused.status_code == 409
    assert "Only 5 units" in refused.json()["message"]
    both = api.patch(url, {"stock": 1, "stock_adjustment": 1}, user=vendor_user)
    assert both.status_code == 400
    variant.refresh_from_db()
    assert variant.stock == 5


def test_stock_adjustment_cannot_exceed_the_stock_limit(api, vendor_user):
    # 2_000_000_000 is the largest stock a vendor may set; beyond 2**31 - 1 PostgreSQL's integer
    # overflows, which must be the client's 409, not a 500.
    variant = VariantFactory(stock=2_000_000_000, service__vendor=vendor_user.marketlink_vendor)
    url = f"/services/variants/{variant.id}/"
    for adjustment in (1, 2_000_000_000):
        refused = api.patch(url, {"stock_adjustment": adjustment}, user=vendor_user)
        assert refused.status_code == 409, refused.content
        assert "2000000000" in refused.json()["message"]
    variant.refresh_from_db()
    assert variant.stock == 2_000_000_000


@pytest.mark.parametrize(("sent", "shown"), [("29.9", "29.90"), ("1e2", "100.00"), (7, "7.00")])
def test_prices_are_shown_with_two_places_as_stored(api, vendor_user, sent, shown):
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    created = api.post(
        f"/services/{service.id}/variants/", {**VARIANT, "price": sent}, user=vendor_user
    )
    assert created.status_code == 201
    assert created.json()["data"]["price"] == shown
    variant_id = created.json()["data"]["id"]
    patched = api.patch(f"/services/variants/{variant_id}/", {"price": sent}, user=vendor_user)
    assert patched.json()["data"]["price"] == shown
    listed = api.get(f"/services/{service.id}/variants/").json()["data"]
    assert [v["price"] for v in listed] == [shown]


def test_inactive_vendor_still_lists_its_own_services(api):
    profile = VendorProfileFactory(is_active=False)
    ServiceFactory.create_batch(2, vendor=profile)
    response = api.get("/services/my/", user=profile.user)
    assert response.status_code == 200
    assert response.json()["pagination"]["count"] == 2
    # ... but it may not sell: adding to the catalogue stays refused.
    assert api.post("/services/", {"name": "Oil"}, user=profile.user).status_code == 403


def test_prices_in_a_currency_without_cents_must_be_whole(api, vendor_user, settings):
    settings.MARKETLINK = {"CURRENCY": "jpy"}
    service = ServiceFactory(vendor=vendor_user.marketlink_vendor)
    response = api.post(
        f"/services/{service.id}/variants/", {**VARIANT, "price": "10.50"}, user=vendor_user
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["body", "price"]
    assert "whole number in JPY" in response.json()["message"]
    created = api.post(
        f"/services/{service.id}/variants/", {**VARIANT, "price": "1500"}, user=vendor_user
    )
    assert created.status_code == 201
    variant_id = created.json()["data"]["id"]
    patched = api.patch(f"/services/variants/{variant_id}/", {"price": "99.9"}, user=vendor_user)
    assert patched.status_code == 400
