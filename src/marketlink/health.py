"""``GET /health/``: is each dependency answering? For load balancers and operators.

Answers 200 when the database answers, 503 otherwise; the lock store and the task queue are
reported but do not fail the check, because bookings stay correct without Redis (see
``marketlink.locking``) and tasks are retried once the queue is back.
"""

from __future__ import annotations

from typing import Any, Literal

from django.db import connection
from django.http import HttpRequest
from ninja import Router, Schema

from marketlink.envelope import Envelope, ok, responses
from marketlink.exceptions import ServiceUnavailable
from marketlink.locking import lock_backend, ping_lock_store

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
        "lock_store": _lock_store(),
        "lock_backend": lock_backend(),
        "task_queue": _task_queue(),
    }
    if report["database"] != "ok":
        raise ServiceUnavailable("The database is not answering.", data=report)
    return ok(report, "All good.")
