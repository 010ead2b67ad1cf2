"""Clients written against the original MarketLink API keep working (DESIGN section 3).

The field lists below are copied by hand from the design, on purpose: lists derived from the code
would agree with any regression. The published schema (``/api/openapi.json``) is compared with
them, endpoint by endpoint, and the seed's own client calls are replayed where its clients broke.
Additions marked (+) are ours; the design allows them beside the seed's fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from django.test import Client

from marketlink.catalog.models import ServiceVariant
from marketlink.testing.factories import ServiceFactory, VariantFactory, VendorProfileFactory

pytestmark = pytest.mark.django_db

Shape = dict[str, Any]  # field name -> None (a value), a Shape (an object) or [Shape] (a list)


def shape(*names: str, **nested: Any) -> Shape:
    return dict.fromkeys(names) | nested


USER = shape("id", "email", "first_name", "last_name", "role", "date_joined")
TOKENS = shape("access", "refresh")
AUTH = shape(user=USER, tokens=TOKENS)
# Public listings show the business, not the person behind it: no `user` (docs/decisions.md).
PUBLIC_VENDOR = shape("id", "business_name", "address", "is_active", "created_at", "updated_at")
# `suspended` (+): staff's suspension, shown on the vendor's own profile only (issue 11).
VENDOR_PROFILE = PUBLIC_VENDOR | shape("suspended", user=USER)
VARIANT = shape(
    "id", "service", "name", "price", "estimated_minutes", "stock", "created_at", "updated_at"
)
AVAILABILITY = VARIANT | shape("is_available", "available_stock")
SERVICE = shape(
    "id",
    "name",
    "description",
    "created_at",
    "updated_at",
    vendor=PUBLIC_VENDOR,
    variants=[VARIANT],
)
ORDER = shape(
    "id",
    "customer_email",
    "vendor_name",
    "total_amount",
    "amount_refunded",  # (+)
    "platform_fee",  # (+) vendor and staff only, null for the customer
    "vendor_share",  # (+) likewise
    "currency",
    "status",
    "payment_method",
    "payment_url",
    "expires_at",
    "created_at",
    "updated_at",
    variant=shape("id", "name", "price", "stock"),
    payout=shape("status", "amount", "transfer_id"),  # (+) vendor and staff only
)
RETURN_PAGE = shape("order_id", "status", "provider_says_paid")  # provider_says_paid (+)
NOTHING = None  # deletes, logout: `data` is null

# (method, path) -> (success status, the shape of `data`; a list for paginated lists)
RESPONSES: dict[tuple[str, str], tuple[int, Any]] = {
    ("post", "/api/users/register/"): (201, AUTH),
    ("post", "/api/users/login/"): (200, AUTH),
    ("post", "/api/users/logout/"): (200, NOTHING),
    ("post", "/api/users/token/refresh/"): (200, TOKENS),
    ("get", "/api/users/profile/"): (200, USER),
    ("patch", "/api/users/profile/"): (200, USER),
    ("post", "/api/vendors/profile/"): (201, VENDOR_PROFILE),
    ("get", "/api/vendors/profile/"): (200, VENDOR_PROFILE),
    ("patch", "/api/vendors/profile/"): (200, VENDOR_PROFILE),
    ("get", "/api/services/"): (200, [SERVICE]),
    ("post", "/api/services/"): (201, SERVICE),
    ("get", "/api/services/my/"): (200, [SERVICE]),
    ("get", "/api/services/{id}/"): (200, SERVICE),
    ("patch", "/api/services/{id}/"): (200, SERVICE),
    ("delete", "/api/services/{id}/"): (200, NOTHING),
    ("get", "/api/services/{id}/variants/"): (200, [VARIANT]),
    ("post", "/api/services/{id}/variants/"): (201, VARIANT),
    ("patch", "/api/services/variants/{id}/"): (200, VARIANT),
    ("delete", "/api/services/variants/{id}/"): (200, NOTHING),
    ("get", "/api/services/variants/{id}/availability/"): (200, AVAILABILITY),
    ("post", "/api/orders/"): (201, ORDER),
    ("get", "/api/orders/my/"): (200, [ORDER]),
    ("get", "/api/orders/vendor/"): (200, [ORDER]),
    ("get", "/api/orders/{id}/"): (200, ORDER),
    ("get", "/api/orders/{id}/success/"): (200, RETURN_PAGE),
    ("get", "/api/orders/{id}/cancel/"): (200, RETURN_PAGE),
    ("post", "/api/orders/{id}/cancel/"): (200, ORDER),  # (+)
    ("post", "/api/orders/{id}/checkout/"): (200, ORDER),  # (+)
    ("post", "/api/orders/{id}/refund/"): (200, ORDER),  # (+)
    ("post", "/api/orders/{id}/complete/"): (200, ORDER),  # (+)
    # (+) a vendor's payouts
    ("post", "/api/vendors/payouts/onboarding/"): (200, shape("url", "expires_at")),
    ("get", "/api/vendors/payouts/"): (
        200,
        shape(
            account=shape(
                "id",
                "charges_enabled",
                "payouts_enabled",
                "details_submitted",
                "requirements_due",
                "ready",
            ),
            balance=shape("currency", "held", "released", "reversed", "debt"),
        ),
    ),
    ("get", "/api/vendors/payouts/entries/"): (
        200,
        [shape("id", "order_id", "kind", "amount", "currency", "provider_id", "created_at")],
    ),
    ("post", "/api/vendors/payouts/dashboard/"): (200, shape("url")),
}
# Not the seed's client's business: the provider reads the webhook's status code, the payment link
# (+) redirects a browser to the checkout, and health (+) is for operators.
UNLISTED = {
    ("post", "/api/webhooks/payment/"),
    ("post", "/api/webhooks/connect/"),
    ("get", "/api/payouts/connect/refresh/{token}/"),
    ("get", "/api/payouts/connect/return/{token}/"),
    ("get", "/api/payments/pay/{token}/"),
    ("get", "/api/health/"),
}


@dataclass(frozen=True)
class Body:
    required: set[str]
    optional: set[str] = field(default_factory=set)


# (method, path) -> the request body's fields, as the design lists them.
REQUESTS: dict[tuple[str, str], Body] = {
    ("post", "/api/users/register/"): Body(
        {"email", "password", "role"}, {"password2", "first_name", "last_name"}
    ),
    ("post", "/api/users/login/"): Body({"email", "password"}),
    ("post", "/api/users/logout/"): Body({"refresh_token"}),
    ("post", "/api/users/token/refresh/"): Body({"refresh"}),
    ("patch", "/api/users/profile/"): Body(set(), {"first_name", "last_name"}),
    ("post", "/api/vendors/profile/"): Body({"business_name", "address"}),
    ("patch", "/api/vendors/profile/"): Body(set(), {"business_name", "address", "is_active"}),
    ("post", "/api/services/"): Body({"name"}, {"description"}),
    ("patch", "/api/services/{id}/"): Body(set(), {"name", "description"}),
    ("post", "/api/services/{id}/variants/"): Body({"name", "price", "estimated_minutes", "stock"}),
    ("patch", "/api/services/variants/{id}/"): Body(
        set(),
        {"name", "price", "estimated_minutes", "stock", "stock_adjustment"},  # (+) last
    ),
    ("post", "/api/orders/"): Body({"variant_id"}),
}
# Listed as required by the design, defaulted here: a client that always sends them (every
# original client) cannot tell. Written down in docs/decisions.md.
DEFAULTED = {
    ("post", "/api/users/register/"): {"role"},  # CUSTOMER
    ("post", "/api/vendors/profile/"): {"address"},  # ""
}

PAGE = {"limit", "offset"}
QUERIES: dict[tuple[str, str], set[str]] = {
    ("get", "/api/services/"): {"search", "vendor", *PAGE},
    ("get", "/api/services/my/"): PAGE,
    ("get", "/api/services/{id}/variants/"): PAGE,
    ("get", "/api/orders/my/"): {"status", *PAGE},
    ("get", "/api/orders/vendor/"): {"status", *PAGE},
    ("get", "/api/vendors/payouts/entries/"): PAGE,
}


@pytest.fixture(scope="module")
def openapi(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        return Client().get("/api/openapi.json").json()  # type: ignore[no-any-return]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema behind a ``$ref``, and behind the non-null branch of an ``X | None``."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        return _resolve(spec, spec["components"]["schemas"][name])
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        return _resolve(spec, branches[0])
    return schema


def _published(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The published schema in the table's terms: objects as Shapes, lists as [Shape]."""
    schema = _resolve(spec, schema)
    if "properties" in schema:
        return {name: _published(spec, sub) for name, sub in schema["properties"].items()}
    if schema.get("type") == "array":
        item = _published(spec, schema["items"])
        return None if item is None else [item]
    return None


def _operation(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return openapi["paths"][path][method]  # type: ignore[no-any-return]


def test_every_published_operation_is_in_the_contract(openapi):
    published = {(method, path) for path, ops in openapi["paths"].items() for method in ops}
    assert published == set(RESPONSES) | UNLISTED


@pytest.mark.parametrize(
    ("method", "path"), list(RESPONSES), ids=[" ".join(key) for key in RESPONSES]
)
def test_answers_have_the_documented_fields(openapi, method, path):
    status, data = RESPONSES[method, path]
    responses = _operation(openapi, method, path)["responses"]
    assert str(status) in responses, f"{method} {path} does not answer {status}"
    envelope = _published(openapi, responses[str(status)]["content"]["application/json"]["schema"])
    listed = isinstance(data, list)
    assert set(envelope) == {"success", "message", "data"} | ({"pagination"} if listed else set())
    assert envelope["data"] == data


@pytest.mark.parametrize(
    ("method", "path"), list(REQUESTS), ids=[" ".join(key) for key in REQUESTS]
)
def test_request_bodies_take_the_documented_fields(openapi, method, path):
    body = REQUESTS[method, path]
    schema = _operation(openapi, method, path)["requestBody"]["content"]["application/json"]
    resolved = _resolve(openapi, schema["schema"])
    assert set(resolved["properties"]) == body.required | body.optional
    assert set(resolved.get("required", [])) == body.required - DEFAULTED.get((method, path), set())


@pytest.mark.parametrize(("method", "path"), list(QUERIES), ids=[" ".join(key) for key in QUERIES])
def test_list_filters_are_the_documented_ones(openapi, method, path):
    parameters = _operation(openapi, method, path)["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == QUERIES[method, path]


# --- The original client, replayed -------------------------------------------------------------


def _log_in(api: Any, email: str, role: str) -> str:
    """Register and log in as the seed's README does, and return the access token."""
    password = "SecurePassword123!"
    registered = api.post(
        "/users/register/",
        {
            "email": email,
            "password": password,
            "first_name": "John",
            "last_name": role.title(),
            "role": role,
        },
    )
    assert registered.status_code == 201, registered.content
    login = api.post("/users/login/", {"email": email, "password": password})
    return login.json()["data"]["tokens"]["access"]  # type: ignore[no-any-return]


def test_original_client_shows_logged_in_as_from_its_vendor_profile(api):
    token = _log_in(api, "vendor@example.com", "VENDOR")
    body = {"business_name": "John's Auto Repair", "address": "123 Main St, Springfield"}
    answers = [
        api.post("/vendors/profile/", body, token=token),
        api.get("/vendors/profile/", token=token),
        api.patch("/vendors/profile/", {"address": "1 Side St"}, token=token),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.content
        user = answer.json()["data"]["user"]
        assert set(user) == set(USER)
        assert (user["email"], user["first_name"], user["role"]) == (
            "vendor@example.com",
            "John",
            "VENDOR",
        )
    profile_id = answers[0].json()["data"]["id"]
    assert api.get("/users/profile/", token=token).json()["data"]["id"] == user["id"]

    # Its services, seen by the public, name the business but not the vendor's email.
    created = api.post("/services/", {"name": "Oil Change"}, token=token)
    assert created.status_code == 201
    for public in (api.get("/services/"), api.get(f"/services/{created.json()['data']['id']}/")):
        assert public.status_code == 200
        assert "vendor@example.com" not in public.content.decode()
    assert api.get("/services/").json()["data"][0]["vendor"]["id"] == profile_id


def test_original_client_reads_order_id_on_the_return_pages(api, customer_user):
    variant = VariantFactory(stock=3)
    order = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).json()["data"]
    for page in ("success", "cancel"):
        answer = api.get(f"/orders/{order['id']}/{page}/")  # a browser, without a token
        assert answer.status_code == 200
        assert answer.json()["data"]["order_id"] == order["id"]
        assert answer.json()["data"]["status"] == "pending"


def test_original_client_must_send_stock_when_adding_a_variant(api):
    vendor = VendorProfileFactory()
    service = ServiceFactory(vendor=vendor)
    answer = api.post(
        f"/services/{service.id}/variants/",
        {"name": "Standard Oil Change", "price": "29.99", "estimated_minutes": 15},
        user=vendor.user,
    )
    assert answer.status_code == 400
    assert answer.json()["message"] == "stock is required"
    assert answer.json()["errors"] == [{"loc": ["body", "stock"], "msg": "stock is required"}]
    assert not ServiceVariant.objects.exists()
    # Editing still takes any single field.
    variant = VariantFactory(service=service, stock=2)
    patched = api.patch(f"/services/variants/{variant.id}/", {"price": "10.00"}, user=vendor.user)
    assert patched.status_code == 200
    assert patched.json()["data"]["stock"] == 2
