"""Property-based conformance of the whole API to its own OpenAPI schema (schemathesis).

Every operation of the example site's ``/api/openapi.json`` is called with generated requests,
valid and invalid, by four callers: anonymous, the vendor who owns a live service and variant,
another verified vendor, and a customer. Generated ``{id}`` path parameters are often swapped for
those real objects, so reads, edits, deletes and availability reach the database instead of
stopping at a 404. Whatever is sent, the answer must not be a 5xx, its status code must be one
the operation declares, and its content type and body must be the declared ones.
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

pytestmark = pytest.mark.django_db

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
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
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half the time, aim a well-formed ``{id}`` at the real service or variant."""
    try:
        uuid.UUID(str((path_parameters or {})["id"]))
    except (KeyError, ValueError):
        return st.just(path_parameters)  # no id, or a malformed one that must stay a 400
    path = context.operation.path
    known = VARIANT_ID if path.startswith("/api/services/variants/") else SERVICE_ID
    return st.sampled_from([path_parameters, {**path_parameters, "id": str(known)}])


@pytest.fixture
def _wsgi_keeps_the_test_connection() -> Iterator[None]:
    """Django's WSGI handler would close the test's connection, inside its transaction, around
    every request; Django's own test client disconnects these receivers too."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _no_throttling(settings: Any) -> None:
    settings.MARKETLINK = {"LOGIN_THROTTLE": "100000/min", "REGISTER_THROTTLE": "100000/min"}


@pytest.fixture(params=["anonymous", "owner", "other_vendor", "customer"])
def caller_headers(request: pytest.FixtureRequest, db: None) -> dict[str, str]:
    """The caller's headers; a vendor (the "owner") has a live service with a variant in stock."""
    service = ServiceFactory(id=SERVICE_ID)
    VariantFactory(id=VARIANT_ID, service=service, stock=3)
    users = {
        "anonymous": None,
        "owner": service.vendor.user,
        "other_vendor": VendorProfileFactory().user,
        "customer": AccountFactory(role=Role.CUSTOMER).user,
    }
    user = users[request.param]
    if user is None:
        return {}
    return {"Authorization": f"Bearer {tokens_issue(user=user)['access']}"}


@schema.parametrize()
# The fixtures are set up once per operation and shared by its examples, on purpose.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_its_schema(
    case: Any, caller_headers: dict[str, str], _wsgi_keeps_the_test_connection: None
) -> None:
    r = case.call(headers=caller_headers)
    _record(case, r, caller_headers)
    case.validate_response(r, checks=CHECKS, headers=caller_headers)


import json as _json  # noqa: E402

_orig = test_every_operation_conforms_to_its_schema


def _record(case, response, headers):
    with open("/tmp/st_log.jsonl", "a") as f:
        f.write(_json.dumps([case.method, case.formatted_path, bool(headers), response.status_code, str(case.meta.generation.mode) if case.meta else None, case.path_parameters]) + "\n")
