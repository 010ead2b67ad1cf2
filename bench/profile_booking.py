#!/usr/bin/env python
"""Where a booking's time goes, in one process, on the bench stack (PostgreSQL + Redis).

    python bench/profile_booking.py [--requests 3000] [--cprofile]

Resets the bench database (as ``run.py`` does), then sends bookings and bare INSERTs through
Django's test client, with no server and no concurrency, and prints:

- the SQL statements of one booking (``CaptureQueriesContext``) and the Redis commands;
- the CPU time of one request (``time.thread_time``: what limits throughput on a busy machine),
  split by phase — JWT, the user lookup, the variant read, the lock, the UPDATE, the INSERT, the
  response — by wrapping marketlink's functions (a phase whose function is gone is skipped);
- with ``--cprofile``, cProfile's cumulative listing (it inflates ORM-heavy code several times:
  read it for shape, the phase split for sizes).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench import run  # noqa: E402

PHASES: Counter[str] = Counter()
ORDER: list[str] = []
REDIS_COMMANDS: Counter[str] = Counter()


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    ORDER.append(name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            PHASES[name] += time.thread_time() - started

    return wrapper


def _wrap(owner: Any, attribute: str, name: str) -> None:
    function = getattr(owner, attribute, None)
    if function is not None:
        setattr(owner, attribute, _timed(name, function))


def instrument() -> None:
    """Wrap the functions a booking goes through (by name, as they are in marketlink today)."""
    from django.core.handlers.base import BaseHandler
    from django.db.backends.base.base import BaseDatabaseWrapper
    from ninja.operation import Operation
    from redis.client import Redis

    from marketlink import locking
    from marketlink.accounts import auth
    from marketlink.orders import services, stock
    from marketlink.orders.models import RepairOrder

    _wrap(BaseHandler, "get_response", "Django request, in all")
    _wrap(Operation, "run", "  ninja operation, in all")
    _wrap(auth.JWTAuth, "authenticate", "    authentication, in all (JWT decode + user)")
    _wrap(auth, "active_user_by_pk", "      user + account SELECT")
    _wrap(services, "order_place", "    order_place, in all")
    _wrap(services, "variant_get", "      variant SELECT (variant_get)")
    _wrap(locking, "_acquire", "      Redis lock acquire")
    _wrap(Redis, "eval", "      Redis lock release (EVAL)")
    _wrap(stock, "take_unit", "      stock UPDATE (take_unit)")
    RepairOrder.objects.create = _timed(  # type: ignore[method-assign]
        "      order INSERT (ORM create)", RepairOrder.objects.create
    )
    _wrap(BaseDatabaseWrapper, "commit", "      COMMIT")
    _wrap(services.logger, "info", "      logger.info")
    _wrap(Operation, "_result_to_response", "    response (schema + JSON)")

    original = Redis.execute_command

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        REDIS_COMMANDS[str(args[0]).upper()] += 1
        return original(self, *args, **options)

    Redis.execute_command = execute_command  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--database-url", default=run.DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=run.DEFAULT_REDIS_URL)
    args = parser.parse_args()

    import logging

    run.django_setup(args.database_url, args.redis_url)
    logging.getLogger("marketlink").handlers[:] = [logging.NullHandler()]
    run.reset_stores(args.database_url, args.redis_url)
    seed = run.migrate_and_seed()

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    tokens = seed["tokens"]
    variants = run.new_variants(seed["vendor"], "profile", 200, run.SPREAD_STOCK)
    bodies = [json.dumps({"variant_id": str(v.id)}) for v in variants]

    def post(path: str, n: int) -> int:
        response = client.post(
            path,
            bodies[n % len(bodies)],
            content_type="application/json",
            headers={"Authorization": f"Bearer {tokens[n % len(tokens)]}"},
        )
        return response.status_code

    def book(n: int) -> int:
        return post("/api/orders/", n)

    def insert(n: int) -> int:
        return post("/bench/insert/", n)

    for n in range(200):  # warm caches and the connection
        assert book(n) == 201, book(n)
        assert insert(n) == 201

    print("== SQL of one booking")
    with CaptureQueriesContext(connection) as queries:
        book(7)
    for number, query in enumerate(queries.captured_queries, 1):
        print(f"{number:2}. {query['sql'][:160]}")

    instrument()
    for name, call in (("booking", book), ("bare insert", insert)):
        PHASES.clear()
        REDIS_COMMANDS.clear()
        cpu, wall = time.thread_time(), time.perf_counter()
        statuses = Counter(call(n) for n in range(args.requests))
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        per = 1000 / args.requests
        print(
            f"\n== {name}: {args.requests} requests {dict(statuses)}; per request: "
            f"{cpu * per:.3f} ms CPU of this process (test client included), "
            f"{wall * per:.3f} ms wall; Redis commands "
            f"{ {k: round(v / args.requests, 2) for k, v in REDIS_COMMANDS.items()} }"
        )
        for phase in ORDER:
            if PHASES[phase]:
                print(f"  {PHASES[phase] * per:7.3f} ms  {phase}")

    if args.cprofile:
        for name, call in (("booking", book), ("bare insert", insert)):
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            for n in range(args.requests):
                call(n)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.top)
            print(f"\n== cProfile (CPU time) of {args.requests} {name} requests")
            print(out.getvalue())


if __name__ == "__main__":
    main()
