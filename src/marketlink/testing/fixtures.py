"""pytest fixtures for hosts' tests: a JSON client for the API and ready-made users.

``api`` speaks the envelope: ``api.post("/orders/", {...}, user=customer_user)`` sends JSON with a
bearer token for that user and returns the Django test response. Override the ``marketlink_prefix``
fixture if the host mounts marketlink somewhere other than ``/api``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from marketlink.accounts.models import Role
from marketlink.accounts.services import tokens_issue
from marketlink.testing.factories import AccountFactory, VendorProfileFactory


class ApiClient:
    def __init__(self, prefix: str) -> None:
        self.client = Client()
        self.prefix = prefix.rstrip("/")

    def request(
        self,
        method: str,
        path: str,
        data: Any = None,
        *,
        user: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = dict(headers or {})
        if user is not None:
            token = tokens_issue(user=user)["access"]
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        body = "" if data is None else json.dumps(data, default=str)
        return self.client.generic(
            method,
            self.prefix + path,
            body,
            content_type="application/json",
            headers=all_headers,
        )

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, data, **kwargs)

    def patch(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self.request("PATCH", path, data, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def marketlink_prefix() -> str:
    return "/api"


@pytest.fixture
def api(marketlink_prefix: str) -> ApiClient:
    return ApiClient(marketlink_prefix)


@pytest.fixture
def customer_user(db: None) -> Any:
    return AccountFactory(role=Role.CUSTOMER).user


@pytest.fixture
def vendor_user(db: None) -> Any:
    """A vendor with an active (verified) profile."""
    return VendorProfileFactory().user


@pytest.fixture
def staff_user(db: None) -> Any:
    """A staff user: ADMIN in the marketplace while (and only while) ``is_staff`` holds."""
    return AccountFactory(user__is_staff=True).user
