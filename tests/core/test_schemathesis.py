"""Property-based conformance of the whole API to its own OpenAPI schema (schemathesis).

Every operation of the example site's ``/api/openapi.json`` is called with generated requests,
valid and invalid, by each kind of caller: anonymous, the vendor who owns a live service and
variant, another verified vendor, a vendor without a profile yet, a customer and a staff member.
A generated well-formed ``{id}`` is often swapped for the real service or variant, so reads,
edits, deletes and availability reach the database instead of stopping at a 404.

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
from marketlink.testing.factories import (
    AccountFactory,
    ServiceFactory,
    VariantFactory,
    VendorProfileFactory,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("_wsgi_keeps_the_test_connection", "_no_throttling"),
]

# A fixed seed and deterministic generation: the same requests on every run, a bounded run time.
CONFIG = {
    "seed": 20261126,
    "generation": {"max-examples": 15, "deterministic": True},
    "phases": {"stateful": {"enabled": False}},
}

SERVICE_ID = uuid.UUID("5e55e55e-0000-4000-8000-000000000001")
VARIANT_ID = uuid.UUID("5e55e55e-0000-4000-8000-000000000002")


def _load_schema() -> Any:
    """The example site's schema, fetched through its WSGI application as a client would."""
    from example_project.wsgi import application

    return schemathesis.openapi.from_wsgi(
        "/api/openapi.json", application, config=SchemathesisConfig.from_dict(CONFIG)
    )


# Loaded at collection (pytest-django has set Django up by then) rather than through
# ``schemathesis.pytest.from_fixture``: schemathesis 4.32's lazy loader reads
# ``Node._nodeid``, which pytest 9.2 no longer has.
schema = _load_schema()


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    """Half the time, aim a well-formed catalogue ``{id}`` at the real service or variant."""
    path = context.operation.path
    try:
        uuid.UUID(str((path_parameters or {})["id"]))
    except (KeyError, ValueError):
        return st.just(path_parameters)  # no id, or a malformed one that must stay a 400
    if not path.startswith("/api/services/"):
        return st.just(path_parameters)
    known = VARIANT_ID if path.startswith("/api/services/variants/") else SERVICE_ID
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


@pytest.fixture
def _no_throttling(settings: Any) -> None:
    settings.MARKETLINK = {"LOGIN_THROTTLE": "100000/min", "REGISTER_THROTTLE": "100000/min"}


@pytest.fixture(params=["anonymous", "owner", "other_vendor", "new_vendor", "customer", "staff"])
def caller_headers(request: pytest.FixtureRequest, db: None) -> dict[str, str]:
    """The caller's headers. The "owner" vendor has a live service with a variant in stock, the
    "other" vendor a profile of its own, the "new" vendor no profile yet."""
    service = ServiceFactory(id=SERVICE_ID)
    VariantFactory(id=VARIANT_ID, service=service, stock=3)
    if request.param == "anonymous":
        return {}
    if request.param == "owner":
        user = service.vendor.user
    elif request.param == "other_vendor":
        user = VendorProfileFactory().user
    elif request.param == "new_vendor":
        user = AccountFactory(role=Role.VENDOR).user
    elif request.param == "customer":
        user = AccountFactory(role=Role.CUSTOMER).user
    else:
        user = AccountFactory(user__is_staff=True).user
    return {"Authorization": f"Bearer {tokens_issue(user=user)['access']}"}


@schema.parametrize()
# The fixtures are set up once per operation and shared by its examples, on purpose.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_its_schema(case: Any, caller_headers: dict[str, str]) -> None:
    if caller_headers and not case.operation.definition.raw.get("security"):
        pytest.skip("a public operation: the anonymous run covers it")
    case.call_and_validate(headers=caller_headers, checks=CHECKS)
