"""Who may do what: every operation of the published schema, called as each kind of caller.

The table below is written out by hand, on purpose: a table derived from the code would agree
with any regression. A new operation fails ``test_every_operation_is_in_the_matrix`` until its
row is added here. Each cell is one request on a fresh site: the caller's own token (issued
before anything below changed), real objects owned by the right party (the vendor's service and
variant, the customer's order) and a valid body, so the status says only who the caller is.

The roles, as the columns:
- ``anonymous``: no token;
- ``customer``: placed the order; ``other_customer``: a customer who did not;
- ``vendor``: sells the service, its variant and the order's unit; ``other_vendor``: another
  vendor with a service of its own;
- ``suspended_vendor``: the vendor itself, after staff suspended it (so its service is hidden);
- ``staff``: a host staff user (ADMIN); ``former_staff``: one whose staff status was taken away
  after its token was issued.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core import signing
from django.test import Client

from marketlink.accounts.models import Role
from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import order_place
from marketlink.orders.transitions import order_transition
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.dummy import session_event
from marketlink.payments.gateways.dummy.connect import account_event, signed_connect_event
from marketlink.payments.models import DummyAccount, DummyCheckoutSession
from marketlink.payments.selectors import payment_link_path
from marketlink.payments.webhooks import webhook_receive
from marketlink.payouts.accounts import PAGE_SALT
from marketlink.testing.factories import (
    DEFAULT_PASSWORD,
    AccountFactory,
    ServiceFactory,
    VariantFactory,
    VendorProfileFactory,
)
from marketlink.vendors.models import VendorProfile
from marketlink.vendors.services import vendors_suspend

pytestmark = pytest.mark.django_db

ROLES = (
    "anonymous",
    "customer",
    "other_customer",
    "vendor",
    "other_vendor",
    "suspended_vendor",
    "staff",
    "former_staff",
)

# (method, path) -> the status each role gets, in the order of ROLES:
#   anonymous, customer, other customer, vendor, other vendor, suspended vendor, staff, former staff
EVERYONE_200 = (200, 200, 200, 200, 200, 200, 200, 200)
SIGNED_IN_200 = (401, 200, 200, 200, 200, 200, 200, 200)
VENDORS_200 = (401, 403, 403, 200, 200, 200, 403, 403)
OWNER_WRITES = (401, 403, 403, 200, 403, 200, 403, 403)
PUBLIC_READ = (200, 200, 200, 200, 200, 404, 200, 200)
CUSTOMER_OF_THE_ORDER = (401, 200, 404, 403, 403, 403, 403, 404)
MATRIX: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", "/api/users/register/"): (201, 201, 201, 201, 201, 201, 201, 201),
    ("post", "/api/users/login/"): EVERYONE_200,
    ("post", "/api/users/logout/"): SIGNED_IN_200,
    ("post", "/api/users/token/refresh/"): EVERYONE_200,
    ("get", "/api/users/profile/"): SIGNED_IN_200,
    ("patch", "/api/users/profile/"): SIGNED_IN_200,
    ("post", "/api/vendors/profile/"): (401, 403, 403, 409, 409, 409, 403, 403),
    ("get", "/api/vendors/profile/"): VENDORS_200,
    ("patch", "/api/vendors/profile/"): VENDORS_200,
    ("get", "/api/services/"): EVERYONE_200,
    ("post", "/api/services/"): (401, 403, 403, 201, 201, 403, 403, 403),
    ("get", "/api/services/my/"): VENDORS_200,
    ("get", "/api/services/{id}/"): PUBLIC_READ,
    ("patch", "/api/services/{id}/"): OWNER_WRITES,
    ("delete", "/api/services/{id}/"): OWNER_WRITES,
    ("get", "/api/services/{id}/variants/"): PUBLIC_READ,
    ("post", "/api/services/{id}/variants/"): (401, 403, 403, 201, 403, 403, 403, 403),
    ("patch", "/api/services/variants/{id}/"): OWNER_WRITES,
    ("delete", "/api/services/variants/{id}/"): OWNER_WRITES,
    ("get", "/api/services/variants/{id}/availability/"): (401, 200, 200, 403, 403, 403, 403, 200),
    ("post", "/api/orders/"): (401, 201, 201, 403, 403, 403, 403, 201),
    ("get", "/api/orders/my/"): (401, 200, 200, 403, 403, 403, 403, 200),
    ("get", "/api/orders/vendor/"): VENDORS_200,
    ("get", "/api/orders/{id}/"): (401, 200, 404, 200, 404, 200, 200, 404),
    ("get", "/api/orders/{id}/success/"): EVERYONE_200,
    ("get", "/api/orders/{id}/cancel/"): EVERYONE_200,
    ("post", "/api/orders/{id}/cancel/"): CUSTOMER_OF_THE_ORDER,
    ("post", "/api/orders/{id}/checkout/"): CUSTOMER_OF_THE_ORDER,
    ("post", "/api/orders/{id}/refund/"): (401, 403, 403, 200, 404, 200, 200, 403),
    ("post", "/api/orders/{id}/complete/"): (401, 403, 403, 200, 404, 200, 403, 403),
    ("post", "/api/webhooks/payment/"): EVERYONE_200,
    ("post", "/api/webhooks/connect/"): EVERYONE_200,
    ("get", "/api/payments/pay/{token}/"): (303, 303, 303, 303, 303, 303, 303, 303),
    ("get", "/api/health/"): EVERYONE_200,
    # Payouts (on here): a vendor's own account and ledger, nobody else's.
    ("post", "/api/vendors/payouts/onboarding/"): VENDORS_200,
    ("get", "/api/vendors/payouts/"): VENDORS_200,
    ("get", "/api/vendors/payouts/entries/"): VENDORS_200,
    ("post", "/api/vendors/payouts/dashboard/"): (401, 403, 403, 409, 409, 409, 403, 403),
    ("get", "/api/payouts/connect/refresh/{token}/"): (303, 303, 303, 303, 303, 303, 303, 303),
    ("get", "/api/payouts/connect/return/{token}/"): EVERYONE_200,
}
# Refund and complete act on an order the customer has paid and the invoice task has moved on;
# every other operation finds the order pending.
NEEDS_A_PROCESSING_ORDER = {
    ("post", "/api/orders/{id}/refund/"),
    ("post", "/api/orders/{id}/complete/"),
}
# Who may see the order's customer (its email is in the order's answers); nobody else's answer
# may name the customer, and nobody's but the vendor's own may name the vendor's person.
SEES_THE_ORDERS_CUSTOMER = {"customer", "vendor", "suspended_vendor", "staff"}


@dataclass
class Party:
    user: Any
    email: str
    tokens: dict[str, str]


@dataclass
class Site:
    """One fresh marketplace, seen by ``caller``."""

    parties: dict[str, Party]
    caller: Party | None
    service: Any
    variant: Any
    order: RepairOrder

    @property
    def customer(self) -> Party:
        return self.parties["customer"]


def _party(account: Any) -> Party:
    return Party(account.user, account.email, tokens_issue(user=account.user))


def _checkout_completed(order: RepairOrder) -> tuple[bytes, str]:
    """The customer pays on the dummy checkout: its session completes with a payment intent,
    and the signed event the provider sends about it, ``(payload, Stripe-Signature)``."""
    session = DummyCheckoutSession.objects.get(order=order)
    session.status, session.payment_status = "complete", "paid"
    session.payment_intent_id = f"pi_dummy_{order.id.hex}"
    session.save()
    return session_event(session, "checkout.session.completed")


def _paid(order: RepairOrder) -> None:
    payload, signature = _checkout_completed(order)
    webhook_receive(payload=payload, signature=signature)


def _site(role: str, operation: tuple[str, str]) -> Site:
    vendor = VendorProfileFactory(payouts_ready=True)
    other_vendor = VendorProfileFactory()
    ServiceFactory(vendor=other_vendor)
    variant = VariantFactory(service=ServiceFactory(vendor=vendor), stock=5)
    accounts = {
        "customer": AccountFactory(),
        "other_customer": AccountFactory(),
        "vendor": vendor.user.marketlink_account,
        "other_vendor": other_vendor.user.marketlink_account,
        "staff": AccountFactory(user__is_staff=True),
        "former_staff": AccountFactory(user__is_staff=True),
        # Who logs in and refreshes when the caller is anonymous: never otherwise involved.
        "anonymous": AccountFactory(),
    }
    parties = {name: _party(account) for name, account in accounts.items()}
    parties["suspended_vendor"] = parties["vendor"]

    customer = parties["customer"]
    order, _ = order_place(
        customer=customer.user, customer_email=customer.email, variant_id=variant.id
    )
    checkout_open(order=order, base_url="http://testserver/")
    if operation in NEEDS_A_PROCESSING_ORDER:
        _paid(order)
        order = order_transition(
            order_id=order.id,
            to=OrderStatus.PROCESSING,
            expected=OrderStatus.PAID,
            source=ChangeSource.TASK,
        )

    # Taken away after the tokens were issued: a token must not keep what its user lost.
    former = parties["former_staff"].user
    former.is_staff = False
    former.save(update_fields=["is_staff"])
    if role == "suspended_vendor":
        vendors_suspend(VendorProfile.objects.filter(pk=vendor.pk))
    caller = None if role == "anonymous" else parties[role]
    return Site(parties, caller, variant.service, variant, order)


# How each operation is called: the path's id, and a valid body for it.
def _path(site: Site, path: str) -> str:
    path = path.removeprefix("/api")
    if path.startswith("/payouts/connect/"):
        token = signing.dumps(str(site.order.vendor_id), salt=PAGE_SALT)
        return path.replace("{token}", token)
    if "{token}" in path:
        return payment_link_path(site.order).removeprefix("/api")
    target = (
        site.variant.id
        if path.startswith("/services/variants/")
        else site.service.id
        if path.startswith("/services/")
        else site.order.id
    )
    return path.replace("{id}", str(target))


def _own(site: Site) -> Party:
    """The caller's own credentials; for an anonymous caller, a bystander's."""
    return site.caller or site.parties["anonymous"]


Body = Callable[[Site], Any]
BODIES: dict[tuple[str, str], Body] = {
    ("post", "/api/users/register/"): lambda site: {
        "email": "newcomer@example.com",
        "password": "A-long-enough-password-1",
        "role": Role.CUSTOMER,
    },
    ("post", "/api/users/login/"): lambda site: {
        "email": _own(site).email,
        "password": DEFAULT_PASSWORD,
    },
    ("post", "/api/users/logout/"): lambda site: {"refresh_token": _own(site).tokens["refresh"]},
    ("post", "/api/users/token/refresh/"): lambda site: {"refresh": _own(site).tokens["refresh"]},
    ("patch", "/api/users/profile/"): lambda site: {"first_name": "Ann"},
    ("post", "/api/vendors/profile/"): lambda site: {
        "business_name": "Second Garage",
        "address": "2 Side Street",
    },
    ("patch", "/api/vendors/profile/"): lambda site: {"address": "3 New Road"},
    ("post", "/api/services/"): lambda site: {"name": "Tyres"},
    ("patch", "/api/services/{id}/"): lambda site: {"name": "Brakes and tyres"},
    ("post", "/api/services/{id}/variants/"): lambda site: {
        "name": "Front pair",
        "price": "89.00",
        "estimated_minutes": 45,
        "stock": 4,
    },
    ("patch", "/api/services/variants/{id}/"): lambda site: {"price": "35.00"},
    ("post", "/api/orders/"): lambda site: {"variant_id": str(site.variant.id)},
}


def _call(site: Site, method: str, path: str) -> Any:
    headers = {}
    if site.caller is not None:
        headers["Authorization"] = f"Bearer {site.caller.tokens['access']}"
    webhook = {
        "/api/webhooks/payment/": lambda: _checkout_completed(site.order),
        "/api/webhooks/connect/": lambda: signed_connect_event(
            account_event(DummyAccount(id="acct_dummy_nobody", country="US", vendor_ref="x"))
        ),
    }.get(path)
    if method == "post" and webhook is not None:
        payload, signature = webhook()
        headers["Stripe-Signature"] = signature
        return Client().post(path, payload, content_type="application/json", headers=headers)
    body = BODIES.get((method, path))
    return Client().generic(
        method.upper(),
        "/api" + _path(site, path),
        "" if body is None else json.dumps(body(site)),
        content_type="application/json",
        headers=headers,
    )


EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@pytest.fixture(scope="module")
def openapi(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        return Client().get("/api/openapi.json").json()  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def dummy_payments(settings: Any) -> None:
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy", "PAYOUTS_ENABLED": True}


def test_every_operation_is_in_the_matrix(openapi):
    published = {(method, path) for path, ops in openapi["paths"].items() for method in ops}
    assert published == set(MATRIX), "add the new operation's row to MATRIX"
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


CELLS = [(operation, role) for operation in MATRIX for role in ROLES]


@pytest.mark.parametrize(
    ("operation", "role"), CELLS, ids=[f"{m} {p} as {r}" for (m, p), r in CELLS]
)
def test_each_role_gets_the_status_the_matrix_says(openapi, operation, role):
    method, path = operation
    site = _site(role, operation)

    answer = _call(site, method, path)

    expected = MATRIX[operation][ROLES.index(role)]
    text = answer.content.decode()
    assert answer.status_code == expected, text[:500]
    assert str(expected) in openapi["paths"][path][method]["responses"]
    if expected != 303:
        assert answer.json()["success"] is (expected < 400), text[:500]
    # No answer names a person the caller may not see.
    own = _own(site).email
    customer = site.customer.email
    seen = set(EMAIL.findall(text)) - {own, "newcomer@example.com"}
    allowed = {customer} if role in SEES_THE_ORDERS_CUSTOMER else set()
    assert seen <= allowed, f"{role} was shown {seen - allowed}"


def test_a_vendor_never_sees_another_vendors_ledger():
    seller = VendorProfileFactory(payouts_ready=True)
    other = VendorProfileFactory(payouts_ready=True)
    customer = AccountFactory()
    variant = VariantFactory(service=ServiceFactory(vendor=seller))
    order, _ = order_place(
        customer=customer.user, customer_email=customer.email, variant_id=variant.id
    )
    checkout_open(order=order, base_url="http://testserver/")
    _paid(order)  # the seller's ledger: the sale and the fee

    def seen(vendor: Any, path: str) -> Any:
        token = tokens_issue(user=vendor.user)["access"]
        answer = Client().get(path, headers={"Authorization": f"Bearer {token}"})
        return answer.json()["data"]

    assert len(seen(seller, "/api/vendors/payouts/entries/")) == 1  # the sale (no fee set)
    assert seen(other, "/api/vendors/payouts/entries/") == []
    assert seen(other, "/api/vendors/payouts/")["balance"]["held"] == "0.00"
    assert seen(seller, "/api/vendors/payouts/")["balance"]["held"] == str(order.total_amount)
