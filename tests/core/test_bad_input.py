"""Whatever a client sends, the answer is a 4xx in the envelope, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def assert_envelope_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["message"]
    return body


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a@example.com", "password": "x"',
        "",
        "[1, 2]",
        '"just a string"',
        "null",
        '{"email": 5, "password": ["x"]}',
    ],
)
def test_malformed_bodies(api, body):
    response = api.client.post("/api/users/login/", body, content_type="application/json")
    assert_envelope_error(response, 400)


def test_nul_bytes_in_body_and_query(api, vendor_user):
    response = api.post("/services/", {"name": "Oil\x00change"}, user=vendor_user)
    body = assert_envelope_error(response, 400)
    assert body["errors"][0]["loc"] == ["body", "name"]
    response = api.get("/services/?search=a%00b")
    body = assert_envelope_error(response, 400)
    assert body["errors"][0]["loc"] == ["query", "search"]


def test_long_strings(api, vendor_user):
    response = api.post("/services/", {"name": "x" * 10_000}, user=vendor_user)
    assert (
        "name should have at most 200 characters" in assert_envelope_error(response, 400)["message"]
    )
    response = api.get("/services/?search=" + "x" * 10_000)
    assert_envelope_error(response, 400)


def test_wrong_content_type_is_415(api):
    response = api.client.post(
        "/api/users/login/", "email=a&password=b", content_type="application/x-www-form-urlencoded"
    )
    assert_envelope_error(response, 415)


def test_oversized_body_is_413(api, settings):
    settings.MARKETLINK = {"MAX_BODY_BYTES": 1024}
    response = api.post("/users/login/", {"email": "a@example.com", "password": "x" * 2000})
    assert_envelope_error(response, 413)


def test_body_beyond_djangos_own_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/users/login/", {"email": "a@example.com", "password": "x" * 5000})
    assert_envelope_error(response, 413)


@pytest.mark.parametrize("param", ["limit=0", "limit=abc", "offset=-1", "vendor=xyz"])
def test_bad_query_params(api, param):
    assert_envelope_error(api.get(f"/services/?{param}"), 400)


def test_bad_and_expired_tokens_are_401(api):
    assert_envelope_error(api.get("/users/profile/", token="not.a.jwt"), 401)
    response = api.client.get("/api/users/profile/", headers={"Authorization": "Basic abc"})
    assert_envelope_error(response, 401)


def test_missing_body_is_named_as_the_body(api):
    response = api.client.post("/api/users/login/", "", content_type="application/json")
    body = assert_envelope_error(response, 400)
    assert body["message"] == "body is required"
    assert body["errors"] == [{"loc": ["body"], "msg": "body is required"}]


def test_unknown_paths_get_a_404_in_the_envelope(api):
    body = assert_envelope_error(api.get("/no/such/thing/"), 404)
    assert body["message"] == "No such endpoint."
    body = assert_envelope_error(api.post("/orders", {"variant_id": "x"}), 404)
    assert "did you mean /api/orders/" in body["message"]


def test_a_post_to_an_unknown_path_is_a_404_in_the_envelope_not_a_csrf_page():
    # An API client sends no CSRF cookie; Django's check answered an HTML 403 here.
    client = Client(enforce_csrf_checks=True)
    response = client.post("/api/auth/login/", {"email": "a@b.c"}, content_type="application/json")
    body = assert_envelope_error(response, 404)
    assert body["message"] == "No such endpoint."


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/payments/dummy/%00/", 404),
        ("/api/payments/dummy/cs_dummy_%00abc/", 404),
        ("/api/payments/pay/%00/", 404),
        ("/api/services/%00/", 400),
        ("/api/orders/%00/success/", 400),
    ],
)
def test_nul_in_a_path_is_a_4xx_in_the_envelope(api, path, status):
    # PostgreSQL refuses NUL in text: a lookup that reached it with one was a 500 there.
    assert_envelope_error(api.client.get(path), status)


def test_the_webhook_takes_four_times_the_body_limit_and_names_it_when_refusing(api, settings):
    # A provider's events outgrow our own requests; past four times MAX_BODY_BYTES the refusal
    # says the limit, as the JSON endpoints' 413 does.
    settings.MARKETLINK = {"MAX_BODY_BYTES": 1024}

    def deliver(size):
        body = '{"padding": "' + "x" * (size - len('{"padding": ""}')) + '"}'
        assert len(body) == size
        return api.client.post("/api/webhooks/payment/", body, content_type="application/json")

    assert deliver(4096).status_code == 400  # within the allowance: on to the signature check
    refused = assert_envelope_error(deliver(4097), 413)
    assert refused["message"] == "The request body is larger than 4096 bytes."
