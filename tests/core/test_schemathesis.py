"""Property-based conformance of the whole API to its own OpenAPI schema (schemathesis).

Every operation of the example site's ``/api/openapi.json`` is called with generated requests,
valid and invalid, by each kind of caller: anonymous, the vendor who owns a live service and
variant, another verified vendor, a vendor without a profile yet, the customer who booked that
variant and a staff member. A generated well-formed ``{id}`` is often swapped for the real service,
variant or order, so reads, edits, deletes, availability and the order's pages and actions reach
the database instead of stopping at a 404.

Then, statefully, the natural caller of each operation (the vendor for the catalogue, the customer
for bookings, staff for refunds) follows the links schemathesis infers from the schema: create a
service, a variant of it, book the variant, then cancel, check out, read or refund that order.

Whatever is sent, the answer must not be a 5xx; its status code must be one the operation
declares; its content type and body must be the declared ones; and it must be in the envelope,
with ``success`` telling the truth about the status code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from fuzzing import bounded_machine
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from marketlink.accounts.models import Role
from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_place
from marketlink.testing.factories import (
    AccountFactory,
    ServiceFactory,
    VariantFactory,
    VendorProfileFactory,
)

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.django_db,
    # Fuzzing calls far past any throttle or per-customer limit.
    pytest.mark.usefixtures("_wsgi_keeps_the_test_connection", "abuse_limits_off"),
]

# A fixed seed and deterministic generation: the same requests on every run, a bounded run time.
CONFIG = {
    "seed": 20261126,
    "generation": {"max-examples": 8, "deterministic": True},
    "phases": {"stateful": {"enabled": False}},
}

SERVICE_ID = uuid.UUID("5e55e55e-0000-4000-8000-000000000001")
VARIANT_ID = uuid.UUID("5e55e55e-0000-4000-8000-000000000002")
ORDER_ID = uuid.UUID("5e55e55e-0000-4000-8000-000000000003")


def _load_schema(config: dict[str, Any]) -> Any:
    """The example site's schema, fetched through its WSGI application as a client would."""
    from example_project.wsgi import application

    return schemathesis.openapi.from_wsgi(
        "/api/openapi.json", application, config=SchemathesisConfig.from_dict(config)
    )


# Loaded at collection (pytest-django has set Django up by then) rather than through
# ``schemathesis.pytest.from_fixture``: schemathesis 4.32's lazy loader reads
# ``Node._nodeid``, which pytest 9.2 no longer has.
schema = _load_schema(CONFIG)


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, aim a well-formed ``{id}`` at the real service, variant or order."""
    path = context.operation.path
    try:
        uuid.UUID(str((path_parameters or {})["id"]))
    except (KeyError, ValueError):
        return st.just(path_parameters)  # no id, or a malformed one that must stay a 400
    if path.startswith("/api/services/variants/"):
        known = VARIANT_ID
    elif path.startswith("/api/services/"):
        known = SERVICE_ID
    elif path.startswith("/api/orders/"):
        known = ORDER_ID
    else:
        return st.just(path_parameters)
    return st.sampled_from([path_parameters, {**path_parameters, "id": str(known)}])


@schemathesis.check
def answers_in_the_envelope(ctx: Any, response: Any, case: Any) -> bool | None:
    """``{"success", "message", "data"}``, with ``success`` false exactly for errors."""
    if case.method.upper() != case.operation.method.upper():
        return None  # a method this path does not declare: Django Ninja's own 405
    body = response.json()
    assert isinstance(body, dict), f"not an envelope: {body!r}"
    assert {"success", "message", "data"} <= body.keys(), f"not an envelope: {body!r}"
    is_error = response.status_code >= 400
    assert body["success"] is not is_error, f"success={body['success']} on {response.status_code}"
    if is_error:
        assert body["data"] is None, body
        assert body["message"], f"an error without a message: {body!r}"
        assert isinstance(body.get("errors"), list), body
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    answers_in_the_envelope,
]


@pytest.fixture
def _wsgi_keeps_the_test_connection() -> Iterator[None]:
    """Django's WSGI handler would close the test's connection, inside its transaction, around
    every request; Django's own test client disconnects these receivers too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(params=["anonymous", "owner", "other_vendor", "new_vendor", "customer", "staff"])
def caller_headers(request: pytest.FixtureRequest, db: None) -> dict[str, str]:
    """The caller's headers. The "owner" vendor has a live service with a variant in stock, the
    "other" vendor a profile of its own, the "new" vendor no profile yet; the customer has a
    pending order of the owner's variant."""
    service = ServiceFactory(id=SERVICE_ID)
    VariantFactory(id=VARIANT_ID, service=service, stock=3)
    customer = AccountFactory(role=Role.CUSTOMER)
    order, _ = order_place(
        customer=customer.user, customer_email=customer.email, variant_id=VARIANT_ID
    )
    # Under a known id, as the service and variant are, for the path-parameter hook.
    RepairOrder.objects.filter(pk=order.pk).update(id=ORDER_ID)
    if request.param == "anonymous":
        return {}
    if request.param == "owner":
        user = service.vendor.user
    elif request.param == "other_vendor":
        user = VendorProfileFactory().user
    elif request.param == "new_vendor":
        user = AccountFactory(role=Role.VENDOR).user
    elif request.param == "customer":
        user = customer.user
    else:
        user = AccountFactory(user__is_staff=True).user
    return bearer(user)


def bearer(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens_issue(user=user)['access']}"}


@schema.parametrize()
# The fixtures are set up once per operation and shared by its examples, on purpose.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_its_schema(case: Any, caller_headers: dict[str, str]) -> None:
    if caller_headers and not case.operation.definition.raw.get("security"):
        pytest.skip("a public operation: the anonymous run covers it")
    case.call_and_validate(headers=caller_headers, checks=CHECKS)


# --- Stateful: chains of calls along the links schemathesis infers from the schema ---------------

# Each scenario is a short chain (create a service, a variant, book it, act on the order); a
# fixed, derandomized budget keeps the run the same every time and well under a minute.
STATEFUL_SETTINGS = bounded_machine(max_examples=40, steps=8)


def natural_caller(path: str) -> str:
    """Who would make this call in a shop's day: the vendor runs the catalogue and completes
    orders, staff refund, the customer does everything else (booking, paying, cancelling)."""
    if path.endswith("/refund/"):
        return "staff"
    if path.endswith("/complete/") or path == "/api/orders/vendor/":
        return "vendor"
    if path.startswith(("/api/services/", "/api/vendors/")) and not path.endswith("/availability/"):
        return "vendor"
    return "customer"


def printable(value: Any) -> Any:
    """``value`` with control characters taken out of its strings (never emptied)."""
    if isinstance(value, str):
        return "".join(c for c in value if c.isprintable()) or "x"
    if isinstance(value, dict):
        return {key: printable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [printable(item) for item in value]
    return value


def plain_body(context: Any, body: Any) -> Any:
    """A body the chain can go on from: printable text, and a new variant the customer can book
    (a price the shop's currency can charge, which the schema's "number or string" cannot say,
    and a few units). The stateless test sends the text and prices that must be refused."""
    body = printable(body)
    operation = context.operation
    if operation.method.upper() == "POST" and operation.path == "/api/services/{id}/variants/":
        body = {**body, "price": "25.00", "stock": 1 + body.get("stock", 0) % 3}
    return body


def plain_headers(context: Any, headers: Any) -> Any:
    return printable(headers)


def test_chains_of_calls_along_the_schema_links_conform() -> None:
    # Links are inferred only with the stateful phase on.
    # Valid requests only: a chain goes on only from a success (the stateless test sends the
    # invalid ones).
    config = {
        **CONFIG,
        "phases": {},
        "generation": {
            **CONFIG["generation"],
            "mode": "positive",
            "with-security-parameters": False,
        },
    }
    # The operations of the chain, so most scenarios start where one does and go on along it.
    stateful_schema = _load_schema(config).include(
        path_regex=r"^/api/(services/|services/\{id\}/variants/|orders/|orders/\{id\}/\w+/)$",
        method="POST",
    )
    stateful_schema.hook("map_body")(plain_body)
    stateful_schema.hook("map_headers")(plain_headers)
    base = stateful_schema.as_state_machine()
    assert any("POST_api_services_id_variants___201" in name for name in dir(base)), (
        "schemathesis no longer infers the variant -> booking link"
    )

    class ShopDay(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            # New people each scenario, so no scenario meets a per-customer limit another left.
            self.headers = {
                "vendor": bearer(VendorProfileFactory().user),
                "customer": bearer(AccountFactory(role=Role.CUSTOMER).user),
                "staff": bearer(AccountFactory(user__is_staff=True).user),
            }

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": self.headers[natural_caller(case.operation.path)]}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS, recorder=self.recorder)

    # A day starts where a shop's does, with a vendor listing a service; every later call
    # follows a link. Chains started from a made-up variant or order id only ever meet a 404.
    entry = "RANDOM__POST_api_services_"
    assert entry in base.root_rules, sorted(base.root_rules)
    for name in base.root_rules - {entry}:
        setattr(ShopDay, name, None)
    ShopDay.root_rules = frozenset({entry})
    ShopDay.run(settings=STATEFUL_SETTINGS)
    assert RepairOrder.objects.exists(), (
        "no chain reached a booking: the links no longer lead from a variant to an order"
    )
