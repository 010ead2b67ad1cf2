"""Concurrency proofs: real threads and processes against a live server and real databases."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from live_site import EXAMPLE, free_port, site_env, start_gunicorn, stop
from order_helpers import place
from order_storm import assert_storm_outcome, book_concurrently, units_held
from threads import race

from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_cancel, order_place, orders_expire
from marketlink.orders.transitions import TransitionRefused
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db(transaction=True)

STOCK = 20
REQUESTS = 200
CUSTOMERS = 50
CONCURRENCY = 50


@pytest.fixture
def customer_tokens() -> list[str]:
    return [tokens_issue(user=AccountFactory().user)["access"] for _ in range(CUSTOMERS)]


@pytest.fixture
def start_server() -> Iterator[object]:
    """Start the example site under gunicorn (2 worker processes) against the test database.

    Processes, not threads: the Redis lock has to hold across them as it does in production.
    ``redis_url=None`` runs it on the embedded default's local-memory cache.
    """
    servers: list[subprocess.Popen[bytes]] = []

    def start(redis_url: str | None) -> str:
        proc, url = start_gunicorn(site_env(REDIS_URL=redis_url), threads=16)
        servers.append(proc)
        return url

    yield start
    for proc in servers:
        stop(proc)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of our own on a spare port, so a test may kill it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed") if os.environ.get(
            "CI"
        ) == "true" else pytest.skip("no redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield proc, f"redis://127.0.0.1:{port}/0"
    proc.kill()
    proc.wait()


@pytest.mark.postgres
@pytest.mark.redis
def test_hot_variant_rush_on_postgres_and_redis(start_server, customer_tokens):
    base_url = start_server(os.environ["REDIS_URL"])
    variant = VariantFactory(stock=STOCK)
    answers = book_concurrently(
        base_url, variant.id, customer_tokens, requests=REQUESTS, concurrency=CONCURRENCY
    )
    assert_storm_outcome(answers, variant.id, STOCK)


@pytest.mark.postgres
@pytest.mark.redis
def test_rush_survives_redis_dying_mid_run(start_server, customer_tokens, private_redis):
    """Redis is killed after 40 answers: bookings go on, on database locks alone, still exact."""
    proc, url = private_redis
    base_url = start_server(url)
    variant = VariantFactory(stock=60)

    def kill_redis_midway(done: int) -> None:
        if done == 40:
            proc.kill()

    answers = book_concurrently(
        base_url,
        variant.id,
        customer_tokens,
        requests=REQUESTS,
        concurrency=CONCURRENCY,
        on_answer=kill_redis_midway,
    )
    assert proc.wait(timeout=5) is not None
    assert_storm_outcome(answers, variant.id, 60)


def test_rush_on_the_embedded_default(start_server, customer_tokens):
    """SQLite (or whatever DATABASE_URL is) with a local-memory cache: database locking alone."""
    base_url = start_server(None)
    variant = VariantFactory(stock=STOCK)
    answers = book_concurrently(
        base_url, variant.id, customer_tokens, requests=REQUESTS, concurrency=CONCURRENCY
    )
    assert_storm_outcome(answers, variant.id, STOCK)


HOLDER = """
import sys, time
import django
django.setup()
from django.db import transaction
from django.test.utils import override_settings
from marketlink.orders import stock
variant_id = sys.argv[1]
with override_settings(MARKETLINK={"LOCK_TTL": 3.0}), stock.variant_lock(variant_id), \
        transaction.atomic():
    stock.take_unit(variant_id)
    print("holding", flush=True)
    time.sleep(120)
"""


@pytest.mark.postgres
@pytest.mark.redis
def test_a_killed_lock_holder_loses_no_unit(settings):
    """SIGKILL a process holding the variant's Redis lock mid-transaction: PostgreSQL rolls its
    decrement back, bookings get 503 (retry) until the lock's TTL lapses, then go on."""
    variant = VariantFactory(stock=3)
    customer = AccountFactory()
    env = site_env(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        PYTHONPATH=os.pathsep.join([str(EXAMPLE), *sys.path]),
    )
    settings.MARKETLINK = {"LOCK_TTL": 3.0, "LOCK_WAIT": 0.3}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(variant.id)], env=env, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"holding"
        killed_at = time.monotonic()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=5)
        # The lock outlives its holder until the TTL: a booking now waits LOCK_WAIT, then 503.
        from marketlink.exceptions import ServiceUnavailable

        with pytest.raises(ServiceUnavailable) as busy:
            order_place(
                customer=customer.user, customer_email=customer.email, variant_id=variant.id
            )
        assert 1 <= busy.value.retry_after <= 3  # when the dead holder's lock lapses
        variant.refresh_from_db()
        assert variant.stock == 3  # the killed transaction's decrement was rolled back
        time.sleep(max(0.0, 3.5 - (time.monotonic() - killed_at)))
        order, created = order_place(
            customer=customer.user, customer_email=customer.email, variant_id=variant.id
        )
        assert created
        assert order.stock_after_reservation == 2
    finally:
        holder.kill()
    variant.refresh_from_db()
    assert variant.stock + units_held(variant.id) == 3


@pytest.mark.redis
def test_a_variant_whose_lock_stays_held_answers_503_with_when_to_retry(
    api, customer_user, settings
):
    """A holder that died keeps the variant's Redis lock until its TTL: a booking meanwhile
    waits ``LOCK_WAIT``, then answers 503 in the envelope, saying when the lock lapses."""
    from marketlink.locking import _redis_client

    variant = VariantFactory(stock=3)
    settings.MARKETLINK = {"LOCK_WAIT": 0.2}
    client = _redis_client()
    assert client is not None, "the PostgreSQL + Redis settings lock on Redis"
    client.set(f"marketlink:lock:variant:{variant.id}", "a-dead-holder", px=4_000)
    try:
        response = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user)
    finally:
        client.delete(f"marketlink:lock:variant:{variant.id}")
    assert response.status_code == 503
    assert response.json()["success"] is False
    assert "try again" in response.json()["message"]
    assert 1 <= int(response["Retry-After"]) <= 4
    variant.refresh_from_db()
    assert variant.stock == 3


@pytest.mark.redis
def test_a_sold_out_variant_answers_409_without_queueing_on_its_busy_lock(
    api, customer_user, settings
):
    """In a rush, the buyers who come after the last unit are told at once: a booking that finds
    the variant's lock held reads the variant first and does not wait for a unit that is not
    there (nor for a variant that does not exist)."""
    from marketlink.locking import _redis_client

    sold_out = VariantFactory(stock=0)
    settings.MARKETLINK = {"LOCK_WAIT": 10.0}
    client = _redis_client()
    assert client is not None, "the PostgreSQL + Redis settings lock on Redis"
    key = f"marketlink:lock:variant:{sold_out.id}"
    client.set(key, "another-booking", px=30_000)
    try:
        started = time.monotonic()
        response = api.post("/orders/", {"variant_id": str(sold_out.id)}, user=customer_user)
        waited = time.monotonic() - started
    finally:
        client.delete(key)
    assert response.status_code == 409
    assert response.json()["message"] == "This variant is out of stock."
    assert waited < 5.0  # LOCK_WAIT is 10 s: it never queued (5 s of slack for a loaded machine)


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(5))
def test_cancel_races_the_expiry_job(round_):
    variant = VariantFactory(stock=1)
    customer = AccountFactory()
    order, _ = place(customer, variant)
    RepairOrder.objects.filter(pk=order.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    results = race(lambda: order_cancel(order=order), orders_expire)
    cancelled_by_customer = not isinstance(results[0], Exception)
    expired = results[1]
    assert cancelled_by_customer + expired == 1, results
    variant.refresh_from_db()
    assert variant.stock == 1
    assert RepairOrder.objects.get(pk=order.id).history.count() == 1


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(5))
def test_two_cancelsrace(round_):
    variant = VariantFactory(stock=1)
    order, _ = place(AccountFactory(), variant)
    results = race(lambda: order_cancel(order=order), lambda: order_cancel(order=order))
    assert sum(isinstance(r, TransitionRefused) for r in results) == 1, results
    variant.refresh_from_db()
    assert variant.stock == 1


@pytest.mark.postgres
@pytest.mark.parametrize("round_", range(5))
def test_identical_idempotency_keysrace(round_):
    variant = VariantFactory(stock=5)
    customer = AccountFactory()
    results = race(*[lambda: place(customer, variant, key="retry-1")] * 4)
    orders = {order.id for order, _ in results}
    assert len(orders) == 1, results
    assert sum(created for _, created in results) == 1
    variant.refresh_from_db()
    assert variant.stock == 4


@pytest.mark.postgres
def test_vendor_restocking_during_a_rush_loses_and_invents_nothing(
    start_server, customer_tokens, api
):
    base_url = start_server(os.environ.get("REDIS_URL"))
    variant = VariantFactory(stock=10)
    vendor = variant.service.vendor.user
    adjustments = [5, -3, 7, 4, -2]
    applied = []

    def restock(done: int) -> None:
        if done % 15 == 0 and adjustments:
            change = adjustments.pop(0)
            response = api.patch(
                f"/services/variants/{variant.id}/", {"stock_adjustment": change}, user=vendor
            )
            if response.status_code == 200:
                applied.append(change)
            else:
                assert response.status_code == 409  # removing more than was left
            connection.close()

    answers = book_concurrently(
        base_url,
        variant.id,
        customer_tokens,
        requests=120,
        concurrency=24,
        on_answer=restock,
    )
    assert not [a for a in answers if a.status >= 500]
    variant.refresh_from_db()
    made_available = 10 + sum(applied)
    assert variant.stock >= 0
    assert variant.stock + units_held(variant.id) == made_available
    assert sum(a.status == 201 for a in answers) == units_held(variant.id)
