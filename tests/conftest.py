"""Suite-wide fixtures and the ``postgres``/``redis`` markers' policy.

A test marked ``postgres`` or ``redis`` needs the real server. Where it is missing, the test is
skipped with the reason, except when ``CI=true``: there a missing server fails the run, so CI can
never go green by skipping what it was meant to prove.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection

from marketlink import conf

pytest_plugins = ["marketlink.testing.fixtures"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing(f"this test needs PostgreSQL; DATABASE_URL points at {connection.vendor}")
    if item.get_closest_marker("redis"):
        if not redis_url():
            _missing("this test needs Redis; set REDIS_URL")
        import redis

        try:
            redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping()
        except redis.RedisError as exc:
            _missing(f"Redis at {redis_url()} is unreachable: {exc}")


@pytest.fixture(autouse=True)
def _fast_hashing_and_clean_cache(settings: pytest.FixtureRequest) -> Iterator[None]:
    # Hashing dominates an API test's time; throttling counters must not leak between tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    cache.clear()
    yield
    with contextlib.suppress(Exception):  # a test may have pointed CACHES at a dead server
        cache.clear()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """A folder Django's file-based email backend writes into (read with ``mail_outbox``)."""
    folder = tmp_path / "mail"
    folder.mkdir()
    return folder


@pytest.fixture
def abuse_limits_off(settings: pytest.FixtureRequest) -> None:
    """Per-customer limits and throttles off, for tests that book or call in bulk as one
    customer (a storm, a fuzzer), as a host lifts them for a load test."""
    current = getattr(settings, "MARKETLINK", {})
    settings.MARKETLINK = {**current, **conf.ABUSE_LIMITS_OFF}  # type: ignore[attr-defined]


@contextlib.contextmanager
def _huey_immediate(immediate: bool) -> Iterator[Any]:
    from huey.contrib.djhuey import HUEY

    was = HUEY.immediate
    HUEY.immediate = immediate
    yield HUEY
    HUEY.immediate = was


@pytest.fixture
def tasks_run_inline() -> Iterator[None]:
    """Huey's immediate mode, whatever HUEY the environment configured (Redis in CI)."""
    with _huey_immediate(True):
        yield


@pytest.fixture
def tasks_queued() -> Iterator[Any]:
    """The queue as a consumer sees it (not immediate), with none running: what is enqueued
    stays there for the test to count."""
    with _huey_immediate(False) as huey:
        huey.flush()
        yield huey
        huey.flush()
