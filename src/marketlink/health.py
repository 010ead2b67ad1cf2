"""``GET /health/``: is each dependency answering? For load balancers and operators.

Answers 200 when the database answers, 503 otherwise; the lock store and the task queue are
reported but do not fail the check, because bookings stay correct without Redis (see
``marketlink.locking``) and tasks are retried once the queue is back.
"""

from __future__ import annotations

from typing import Any, Literal

from django.db import connection
from django.http import HttpRequest
from ninja import Router, Schema, Status

from marketlink.envelope import Envelope, responses
from marketlink.locking import lock_backend

router = Router(tags=["health"])

State = Literal["ok", "down", "not used"]


class HealthOut(Schema):
    database: State
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


def _lock_store() -> State:
    if lock_backend() != "redis":
        return "not used"
    from django_redis import get_redis_connection

    from marketlink import conf

    try:
        get_redis_connection(conf.get().LOCK_CACHE).ping()
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
def health(request: HttpRequest) -> Status[dict[str, Any]]:
    report = {
        "database": _database(),
        "lock_store": _lock_store(),
        "lock_backend": lock_backend(),
        "task_queue": _task_queue(),
    }
    healthy = report["database"] == "ok"
    message = "All good." if healthy else "The database is not answering."
    return Status(200 if healthy else 503, {"success": healthy, "message": message, "data": report})
