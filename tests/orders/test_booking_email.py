"""Booking needs an address: orders, receipts and the payment provider all go by it.

A host may make users without one (``auth.User`` allows a blank email; a custom user may be saved
with one blank too); marketlink gives such a user an account but not an order. Run with
``--ds=example_project.settings_stock_user`` too: the user is made the same way for either model.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import RepairOrder
from marketlink.testing.factories import VariantFactory

pytestmark = pytest.mark.django_db


def host_user_without_email() -> Any:
    user_model = get_user_model()
    user = user_model()
    if user_model.get_email_field_name() != user_model.USERNAME_FIELD:
        setattr(user, user_model.USERNAME_FIELD, "no-address")
    setattr(user, user_model.get_email_field_name(), "")
    user.set_unusable_password()
    user.save()
    return user


def test_a_user_without_an_email_cannot_book_and_is_told_why(api):
    user = host_user_without_email()
    variant = VariantFactory(stock=2)
    response = api.post("/orders/", {"variant_id": str(variant.id)}, user=user)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert "email address" in body["message"]
    assert "add" in body["message"]
    assert not RepairOrder.objects.exists()
    assert ServiceVariant.objects.get(pk=variant.pk).stock == 2


def test_a_user_given_an_email_later_books_with_it(api, settings):
    settings.MARKETLINK = {"AUTH_USER_CACHE": 0}
    user = host_user_without_email()
    variant = VariantFactory(stock=2)
    assert api.post("/orders/", {"variant_id": str(variant.id)}, user=user).status_code == 400
    setattr(user, get_user_model().get_email_field_name(), "Late@Example.com")
    user.save()
    response = api.post("/orders/", {"variant_id": str(variant.id)}, user=user)
    assert response.status_code == 201, response.content
    assert response.json()["data"]["customer_email"] == "late@example.com"
    assert api.get("/users/profile/", user=user).json()["data"]["email"] == "late@example.com"
