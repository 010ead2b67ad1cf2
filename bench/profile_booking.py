#!/usr/bin/env python
"""Where a booking's time goes, in one process, on the bench stack (PostgreSQL + Redis).

    python bench/profile_booking.py [--requests 3000] [--cprofile]

Resets the bench database (as ``run.py`` does), then sends bookings and bare INSERTs through
Django's test client, with no server and no concurrency, and prints:

- the SQL statements of one booking (``CaptureQueriesContext``) and the Redis commands;
- the CPU time of one request, split by phase — auth (JWT, the cached user), the body's
  validation, the variant read, the lock, the stock UPDATE + order INSERT, the commit, the
  response — by wrapping marketlink's and ninja's functions (``bench/profiling.py``);
- with ``--cprofile``, cProfile's cumulative listing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(BENCH.parent), str(BENCH.parent / "example_project")]

from bench import profiling, stack  # noqa: E402

PHASES = profiling.Phases()


def instrument() -> None:
    """Wrap the functions a booking goes through (by name, as they are in marketlink today)."""
    from django.core.handlers.base import BaseHandler
    from django.db.backends.base.base import BaseDatabaseWrapper
    from ninja.operation import Operation
    from redis.client import Redis

    from marketlink import locking
    from marketlink.accounts import auth
    from marketlink.orders import services, sql, stock

    wrap = PHASES.wrap
    wrap(BaseHandler, "get_response", "Django request, in all")
    wrap(Operation, "run", "  ninja operation, in all")
    wrap(Operation, "_run_checks", "    auth checks, in all")
    wrap(auth.JWTAuth, "authenticate", "      JWTAuth.authenticate (JWT decode + user)")
    wrap(auth.recent_users, "get", "        user from the per-process cache (deep copy)")
    wrap(auth, "active_user_by_pk", "          user + account SELECT (cache miss)")
    wrap(auth, "account_for_user", "        account_for_user")
    wrap(Operation, "_get_values", "    body parse + validation (pydantic)")
    wrap(services, "order_place", "    order_place, in all")
    wrap(stock, "reserve", "      stock.reserve (lock, write, release of lapsed ones)")
    wrap(locking, "_acquire", "        Redis lock acquire (SET NX)")
    wrap(sql, "read_into", "        variant read (lock busy, or no free unit)")
    wrap(sql, "take_unit_into", "        unit + order in one statement (sql.take_unit_into)")
    wrap(stock, "_release_lapsed", "        release of lapsed reservations (no free unit)")
    wrap(Redis, "eval", "        Redis lock release (EVAL)")
    wrap(BaseDatabaseWrapper, "commit", "      COMMIT")
    wrap(services.signals, "send_on_commit", "      order_placed signal (on commit)")
    wrap(services.logger, "info", "      logger.info")
    wrap(Operation, "_result_to_response", "    response (envelope schema + JSON)")
    PHASES.count_redis()


def main() -> None:
    args = profiling.arguments(__doc__, "requests", 3000, 40)
    seed = profiling.setup(args)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    tokens = seed["tokens"]
    variants = stack.new_variants(seed["vendor"], "profile", 200, stack.SPREAD_STOCK)
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
    requests = range(args.requests)
    PHASES.measure("booking", book, requests)
    PHASES.measure("bare insert", insert, requests)
    PHASES.report_missing()

    if args.cprofile:
        for name, call in (("booking", book), ("bare insert", insert)):
            profiling.cprofile(
                f"{args.requests} {name} requests",
                lambda call=call: [call(n) for n in requests],
                args.top,
            )


if __name__ == "__main__":
    main()
