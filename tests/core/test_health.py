from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def test_health_reports_each_dependency(api):
    response = api.get("/health/")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["database"] == "ok"
    expected_lock = "ok" if data["lock_backend"] == "redis" else "not used"
    assert data["lock_store"] == expected_lock


def test_health_is_503_when_the_database_is_down(api, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = api.get("/health/")
    assert response.status_code == 503
    assert response.json()["data"]["database"] == "down"
    assert response.json()["success"] is False


def test_health_reports_a_dead_lock_store(api, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    data = api.get("/health/").json()["data"]
    assert data["lock_backend"] == "redis"
    assert data["lock_store"] == "down"


def test_a_health_503_is_an_envelope_error_that_keeps_the_report(api, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    body = api.get("/health/").json()
    assert body["message"] == "The database is not answering."
    assert body["errors"] == []
    assert set(body["data"]) == {"database", "cache", "lock_store", "lock_backend", "task_queue"}
