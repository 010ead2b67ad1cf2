"""One scheduler, seen by doctor: each periodic job a scheduler enqueues is its beat, recorded
with its host and pid in the shared cache (Redis), from real processes. Two that beat together
fail doctor, one restarted does not, and none for 3 minutes fails it with the operator's step."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from live_site import EXAMPLE, site_env
from typer.testing import CliRunner

from marketlink import heartbeat
from marketlink.cli import app
from marketlink.orders.tasks import expire_reservations

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

ME = f"host {socket.gethostname()} pid {os.getpid()}"


@pytest.fixture
def shared_cache(settings: Any, tasks_queued: Any) -> Any:
    """The default cache in Redis, as every process of a production site shares it."""
    settings.CACHES = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
    }
    cache.clear()
    return tasks_queued


def scheduler_item() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["doctor", "--json"], catch_exceptions=False)
    items = {item["check"]: item for item in json.loads(result.stdout)["items"]}
    return items["scheduler"]


def enqueue_from_another_process() -> int:
    """What another consumer's scheduler does each minute: enqueue a periodic job (here from
    ``manage.py shell`` on the example site, which shares this Redis); its pid."""
    code = (
        "import os; from huey.contrib.djhuey import HUEY; "
        "from marketlink.orders.tasks import expire_reservations; "
        "HUEY.enqueue(expire_reservations.s()); print(os.getpid())"
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), "shell", "-c", code],
        env=site_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.split()[-1])


def test_one_scheduler_beats_with_its_host_and_pid(shared_cache):
    shared_cache.enqueue(expire_reservations.s())  # what this process's scheduler would do

    beats = heartbeat.scheduler_beats()
    assert [(b.host, b.pid) for b in beats] == [(socket.gethostname(), os.getpid())]
    assert scheduler_item() == {
        "check": "scheduler",
        "status": "ok",
        "detail": f"One scheduler beats: {ME}.",
        "fix": None,
    }


def test_a_restarted_scheduler_is_one_and_two_beating_together_fail(shared_cache):
    shared_cache.enqueue(expire_reservations.s())
    other = enqueue_from_another_process()

    # This process has not beaten since the other one first did: as after a restart.
    item = scheduler_item()
    assert item["status"] == "ok"
    assert item["detail"] == f"One scheduler beats: host {socket.gethostname()} pid {other}."

    shared_cache.enqueue(expire_reservations.s())  # ... but it is alive: two schedulers

    item = scheduler_item()
    assert item["status"] == "fail"
    assert item["detail"].startswith("2 schedulers beat within 3 minutes: ")
    assert f"pid {other}" in item["detail"]
    assert ME in item["detail"]
    assert "--no-periodic" in item["fix"]


def test_other_tasks_and_immediate_mode_are_no_beat(shared_cache):
    from marketlink.outbox.tasks import drain_outbox

    shared_cache.enqueue(drain_outbox.s())  # a wake's drain: not a periodic job
    shared_cache.immediate = True  # run inline, as a shell would: no scheduler enqueued it
    shared_cache.enqueue(expire_reservations.s())

    assert heartbeat.scheduler_beats() == []


def test_no_scheduler_for_3_minutes_fails_and_says_which_was_last(shared_cache):
    assert scheduler_item()["detail"].startswith("No scheduler has enqueued the periodic jobs")
    shared_cache.enqueue(expire_reservations.s())
    # Its host died four minutes ago: its beat ages, and no other consumer takes over.
    key = f"marketlink:heartbeat:schedulers:{socket.gethostname()}:{os.getpid()}"
    dead = timezone.now() - timedelta(minutes=4)
    cache.set(key, {"first": dead, "last": dead})

    item = scheduler_item()

    assert item["status"] == "fail"
    assert item["detail"].startswith(
        f"No scheduler has enqueued the periodic jobs in 3 minutes. The last was {ME}, at "
    )
    assert "on a live host" in item["fix"]


def test_each_job_beat_says_where_it_ran(shared_cache):
    heartbeat.beat()  # what the periodic expiry job does every minute, in whichever consumer

    item = {
        i["check"]: i
        for i in json.loads(CliRunner().invoke(app, ["doctor", "--json"]).stdout)["items"]
    }["consumer"]
    assert item["status"] == "ok"
    assert item["detail"].endswith(f"s ago ({ME}).")
