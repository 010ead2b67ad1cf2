"""Names are one line of text: control characters are refused where they come in (issue 7).

A line break in a service or business name reached the invoice's subject and made every send fail
("Header values may not contain linefeed"). Each kind of single-line field is tried through the
API; multi-line fields (address, description) keep their line breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from marketlink.accounts.models import Account
from marketlink.catalog.models import Service, ServiceVariant
from marketlink.testing.factories import AccountFactory, ServiceFactory, VariantFactory
from marketlink.vendors.models import VendorProfile

pytestmark = pytest.mark.django_db

VARIANT = {"name": "Standard", "price": "29.99", "estimated_minutes": 15, "stock": 5}

# field -> a call that sends `text` in it; each returns the response.
Send = Callable[[Any, Any, str], Any]


def _register(api: Any, vendor: Any, text: str) -> Any:
    return api.post(
        "/users/register/",
        {"email": "new@example.com", "password": "SecurePassword123!", "first_name": text},
    )


def _profile_last_name(api: Any, vendor: Any, text: str) -> Any:
    return api.patch("/users/profile/", {"last_name": text}, user=vendor)


def _new_business(api: Any, vendor: Any, text: str) -> Any:
    newcomer = AccountFactory(role="VENDOR").user
    return api.post("/vendors/profile/", {"business_name": text}, user=newcomer)


def _rename_business(api: Any, vendor: Any, text: str) -> Any:
    return api.patch("/vendors/profile/", {"business_name": text}, user=vendor)


def _new_service(api: Any, vendor: Any, text: str) -> Any:
    return api.post("/services/", {"name": text}, user=vendor)


def _rename_service(api: Any, vendor: Any, text: str) -> Any:
    service = ServiceFactory(vendor=vendor.marketlink_vendor)
    return api.patch(f"/services/{service.id}/", {"name": text}, user=vendor)


def _new_variant(api: Any, vendor: Any, text: str) -> Any:
    service = ServiceFactory(vendor=vendor.marketlink_vendor)
    return api.post(f"/services/{service.id}/variants/", {**VARIANT, "name": text}, user=vendor)


def _rename_variant(api: Any, vendor: Any, text: str) -> Any:
    variant = VariantFactory(service__vendor=vendor.marketlink_vendor)
    return api.patch(f"/services/variants/{variant.id}/", {"name": text}, user=vendor)


SINGLE_LINE: dict[str, tuple[Send, str]] = {
    "register first_name": (_register, "first_name"),
    "profile last_name": (_profile_last_name, "last_name"),
    "new business_name": (_new_business, "business_name"),
    "renamed business_name": (_rename_business, "business_name"),
    "new service name": (_new_service, "name"),
    "renamed service name": (_rename_service, "name"),
    "new variant name": (_new_variant, "name"),
    "renamed variant name": (_rename_variant, "name"),
}
CONTROLS = {
    "line feed": ("Oil\nChange", "a line break (U+000A)"),
    "carriage return": ("Oil\rChange", "a carriage return (U+000D)"),
    "tab": ("Oil\tChange", "a tab (U+0009)"),
    "escape": ("Oil\x1b[31mChange", "a control character (U+001B)"),
    "next line": ("Oil\x85Change", "a control character (U+0085)"),
    "line separator": ("Oil\u2028Change", "a line separator (U+2028)"),
    "paragraph separator": ("Oil\u2029Change", "a paragraph separator (U+2029)"),
}


def _texts_stored() -> set[str]:
    """Every name the calls above could have written (factories' own names start otherwise)."""
    stored = {
        *Service.objects.values_list("name", flat=True),
        *ServiceVariant.objects.values_list("name", flat=True),
        *VendorProfile.objects.values_list("business_name", flat=True),
        *Account.objects.values_list("email", flat=True),
        *get_user_model().objects.values_list("last_name", flat=True),
    }
    return {text for text in stored if text.startswith("Oil") or text == "new@example.com"}


@pytest.mark.parametrize("control", list(CONTROLS))
@pytest.mark.parametrize("case", list(SINGLE_LINE))
def test_single_line_fields_refuse_control_characters(api, vendor_user, case, control):
    send, field = SINGLE_LINE[case]
    text, found = CONTROLS[control]
    response = send(api, vendor_user, text)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    message = f"{field} must be a single line without control characters; it contains {found}"
    assert body["message"] == message
    assert body["errors"] == [{"loc": ["body", field], "msg": message}]
    assert _texts_stored() == set()


@pytest.mark.parametrize("case", list(SINGLE_LINE))
def test_single_line_fields_take_any_script_and_punctuation(api, vendor_user, case):
    send, field = SINGLE_LINE[case]
    response = send(api, vendor_user, "Zoë's Garāž — 東京 №1 🚗")
    assert response.status_code in (200, 201), response.content
    shown = response.json()["data"]
    if field in ("first_name", "last_name"):
        shown = shown.get("user", shown)  # registering answers {user, tokens}
    assert shown[field] == "Zoë's Garāž — 東京 №1 🚗"


def test_search_refuses_control_characters(api):
    response = api.get("/services/?search=oil%0Achange")
    assert response.status_code == 400
    assert response.json()["errors"][0]["loc"] == ["query", "search"]
    assert "search must be a single line" in response.json()["message"]


def test_address_and_description_keep_line_breaks(api, vendor_user):
    newcomer = AccountFactory(role="VENDOR").user
    address = "Unit 4\r\nIndustrial Estate\n\tSpringfield"
    created = api.post(
        "/vendors/profile/", {"business_name": "Oil Garage", "address": address}, user=newcomer
    )
    assert created.status_code == 201, created.content
    assert created.json()["data"]["address"] == address
    description = "Includes:\n- filter\n- up to 5 l of oil"
    service = api.post("/services/", {"name": "Oil", "description": description}, user=vendor_user)
    assert service.status_code == 201, service.content
    assert service.json()["data"]["description"] == description


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("patch", "/vendors/profile/", {"address": "Unit 4\x07"}, "address"),
        ("post", "/services/", {"name": "Oil", "description": "Filter\x07"}, "description"),
    ],
)
def test_address_and_description_refuse_other_control_characters(
    api, vendor_user, method, path, body, field
):
    response = api.request(method.upper(), path, body, user=vendor_user)
    assert response.status_code == 400, response.content
    message = (
        f"{field} must not contain control characters other than line breaks and tabs; "
        "it contains a control character (U+0007)"
    )
    assert response.json()["message"] == message
    assert response.json()["errors"] == [{"loc": ["body", field], "msg": message}]


def test_email_refuses_line_separators(api):
    # Django's email validator lets U+2028 through in the domain; the address goes into the
    # invoice's To: header.
    response = api.post(
        "/users/register/", {"email": "ab@exa\u2028mple.com", "password": "SecurePassword123!"}
    )
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["loc"] == ["body", "email"]
    assert response.json()["message"] == (
        "email must be a single line without control characters; "
        "it contains a line separator (U+2028)"
    )
    assert not Account.objects.exists()
