"""``GET /health/``: is each dependency answering? For load balancers and operators.

Each dependency is reported on its own: the database, the cache (throttle counts), the lock store
and the task queue (Huey's broker). Answers 503 when one the site cannot work without is down:
the database always, and the task queue when one is used (with a consumer, the outbox's drainer
is woken and scheduled there: while the broker is down, nothing owed is lost, but nothing is sent
until it is back). The cache and the
lock store are reported but do not fail the check: throttles let requests through without their
cache, and bookings stay correct without Redis (see ``marketlink.locking``).
"""

from __future__ import annotations

from typing import Any, Literal

from django.core.cache import caches
from django.db import connection
from django.http import HttpRequest
from ninja import Router, Schema

from marketlink import conf
from marketlink.envelope import Envelope, ok, responses
from marketlink.exceptions import ServiceUnavailable
from marketlink.locking import lock_backend, ping_lock_store

router = Router(tags=["health"])

State = Literal["ok", "down", "not used"]


class HealthOut(Schema):
    database: State
    cache: State
    lock_store: State
    lock_backend: str
    task_queue: State


def _database() -> State:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return "down"
    return "ok"


def _cache() -> State:
    try:
        caches[conf.get().THROTTLE_CACHE].get("marketlink:health")
    except Exception:
        return "down"
    return "ok"


def _lock_store() -> State:
    if lock_backend() != "redis":
        return "not used"
    try:
        ping_lock_store()
    except Exception:
        return "down"
    return "ok"


def _task_queue() -> State:
    from huey.contrib.djhuey import HUEY

    if HUEY.immediate:
        return "not used"
    try:
        HUEY.storage.queue_size()
    except Exception:
        return "down"
    return "ok"


@router.get("/", response=responses(200, Envelope[HealthOut], 503) | {503: Envelope[HealthOut]})
def health(request: HttpRequest) -> dict[str, Any]:
    report = {
        "database": _database(),
        "cache": _cache(),
        "lock_store": _lock_store(),
        "lock_backend": lock_backend(),
        "task_queue": _task_queue(),
    }
    if report["database"] != "ok":
        raise ServiceUnavailable("The database is not answering.", data=report)
    if report["task_queue"] == "down":
        raise ServiceUnavailable("The task queue is not answering.", data=report)
    degraded = [name for name in ("cache", "lock_store") if report[name] == "down"]
    if degraded:
        return ok(report, f"Working without: {', '.join(degraded)}.")
    return ok(report, "All good.")
