from __future__ import annotations

import os

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


CLOSED_PORT = "redis://127.0.0.1:1/0"


def redis_everywhere(settings, monkeypatch, url: str) -> None:
    """The cache, the lock store and Huey's broker all on the Redis at ``url``."""
    from huey import RedisHuey
    from huey.contrib import djhuey

    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    monkeypatch.setattr(djhuey, "HUEY", RedisHuey("marketlink-health-test", url=url))


def test_redis_on_a_closed_port_is_a_503_naming_each_dependency(api, settings, monkeypatch):
    redis_everywhere(settings, monkeypatch, CLOSED_PORT)
    response = api.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["message"] == "The task queue is not answering."
    assert body["data"] == {
        "database": "ok",
        "cache": "down",
        "lock_store": "down",
        "lock_backend": "redis",
        "task_queue": "down",
    }


def test_a_dead_cache_alone_is_reported_but_the_site_is_up(api, settings, monkeypatch):
    """Throttles pass without their cache and bookings lock on the database: degraded, not
    down. The task queue runs inline, as in the embedded default."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": CLOSED_PORT,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    settings.MARKETLINK = {"LOCK_BACKEND": "database"}
    from huey import MemoryHuey
    from huey.contrib import djhuey

    monkeypatch.setattr(djhuey, "HUEY", MemoryHuey("marketlink-health-test", immediate=True))
    response = api.get("/health/")
    assert response.status_code == 200
    assert response.json()["message"] == "Working without: cache."
    assert response.json()["data"]["cache"] == "down"
    assert response.json()["data"]["task_queue"] == "not used"


@pytest.mark.redis
def test_with_a_live_redis_every_dependency_is_ok(api, settings, monkeypatch):
    redis_everywhere(settings, monkeypatch, os.environ["REDIS_URL"])
    response = api.get("/health/")
    assert response.status_code == 200
    assert response.json()["message"] == "All good."
    data = response.json()["data"]
    assert (data["cache"], data["lock_store"], data["task_queue"]) == ("ok", "ok", "ok")
