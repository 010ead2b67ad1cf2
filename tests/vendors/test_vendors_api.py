from __future__ import annotations

import pytest

from marketlink.testing.factories import AccountFactory, VendorProfileFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def vendor_without_profile():
    return AccountFactory(role="VENDOR").user


def test_create_get_patch_profile(api, vendor_without_profile):
    user = vendor_without_profile
    created = api.post(
        "/vendors/profile/", {"business_name": "John's Auto", "address": "1 Main"}, user=user
    )
    assert created.status_code == 201
    data = created.json()["data"]
    assert set(data) == {
        "id",
        "user",
        "business_name",
        "address",
        "is_active",
        "suspended",
        "created_at",
        "updated_at",
    }
    assert data["user"]["email"] == user.email.lower()
    assert data["is_active"] is True
    assert data["suspended"] is False
    assert api.get("/vendors/profile/", user=user).json()["data"]["id"] == data["id"]
    patched = api.patch(
        "/vendors/profile/", {"address": "2 Side St", "is_active": False}, user=user
    )
    assert patched.status_code == 200
    assert patched.json()["data"]["address"] == "2 Side St"
    assert patched.json()["data"]["is_active"] is False


def test_second_profile_is_409(api, vendor_user):
    response = api.post("/vendors/profile/", {"business_name": "Again"}, user=vendor_user)
    assert response.status_code == 409


def test_get_without_profile_is_404(api, vendor_without_profile):
    assert api.get("/vendors/profile/", user=vendor_without_profile).status_code == 404


def test_customers_cannot_have_vendor_profiles(api, customer_user):
    response = api.post("/vendors/profile/", {"business_name": "Nope"}, user=customer_user)
    assert response.status_code == 403
    assert response.json()["message"] == "Only vendors can do this."


def test_anonymous_is_401(api):
    assert api.get("/vendors/profile/").status_code == 401


def test_business_name_is_required_and_bounded(api, vendor_without_profile):
    user = vendor_without_profile
    assert api.post("/vendors/profile/", {"address": "x"}, user=user).status_code == 400
    too_long = api.post("/vendors/profile/", {"business_name": "x" * 10_000}, user=user)
    assert too_long.status_code == 400
    assert "business_name" in too_long.json()["message"]


def test_profiles_are_per_vendor(api):
    mine, theirs = VendorProfileFactory(), VendorProfileFactory()
    assert api.get("/vendors/profile/", user=mine.user).json()["data"]["id"] == str(mine.id)
    assert api.get("/vendors/profile/", user=theirs.user).json()["data"]["id"] == str(theirs.id)
