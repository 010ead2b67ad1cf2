#!/usr/bin/env python
"""marketlink's load benchmark: the example site under gunicorn on PostgreSQL + Redis.

    python bench/run.py            # full run: 4x2 (headline) and 8s, 3 rounds each (4-6 min)
    python bench/run.py --quick    # 4x2, one short round (40-70 s)

It starts a Stripe stand-in (``marketlink.testing.stripe_server.StripeStandIn``) in this process
and serves the site with ``PAYMENT_GATEWAY = "stripe"`` pointed at it. For each gunicorn
configuration (gthread, workers x threads) it (re)creates a dedicated database (``ml_bench``) and
empties Redis db 7, migrates and seeds them through the ORM and marketlink's services, starts
gunicorn and, beside it, the example project's Huey consumer (``manage.py run_huey``, RedisHuey),
and then, each round, runs these scenarios with the same closed-loop client
(``bench/loadclient.py``) at 32 concurrent keep-alive connections, on loopback only:

- ``baseline``: ``POST /bench/insert/``, a bare Django view doing one INSERT (``bench/views.py``);
- ``spread``: ``POST /api/orders/`` over 50 variants with ample stock, 200 customers' tokens;
- ``hot``: rushes of 200 buyers (one booking each) for a variant of 50 units, back to back;
- ``baseline open`` / ``spread open``: the same two as an open loop at half the round's baseline
  rate (requests started on time whatever the answers; latency from each one's due time), and
  ``spread steady``: bookings as an open loop at half the round's ``spread`` rate;
- ``webhook pi`` / ``webhook cs``: ``POST /api/webhooks/payment/``, the Stripe-signed
  ``payment_intent.succeeded`` (or ``checkout.session.completed``) of 100 orders paid at the
  stand-in, each delivered twice: half the pairs in flight together, half one after the other
  (``bench/webhooks.py``); the consumer sends each paid order's invoice meanwhile.

Every rate is compared with the baseline of the same round (``ratio``). After each scenario it
checks the database (oversold units, stock consistency, refusals while stock remained, 2xx count =
orders written; for the webhooks: every order paid exactly once, every event processed once, one
invoice per order sent on the first try) and after each round it reads every worker's RSS and the
load average. ``--slow-stripe`` adds the Stripe-latency phases, ``--eager`` the eager payment mode
contrast. See ``bench/README.md`` for the method and the figures. Results also go to
``bench/results/*.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Run as a script, ``bench/`` itself is sys.path[0]; import it as the ``bench`` package instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench.processes import CpuMeter, Gunicorn, HueyConsumer, free_port  # noqa: E402
from bench.report import LEGEND, Outcome, table, verdict  # noqa: E402
from bench.scenarios import Bench  # noqa: E402
from bench.stack import (  # noqa: E402
    CUSTOMERS,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    SLOW_STRIPE_S,
    WEBHOOK_KINDS,
    WEBHOOK_ORDERS,
    django_setup,
    migrate_and_seed,
    reset_stores,
    start_standin,
)


def server_layout(config: str) -> tuple[int, int, str]:
    """``4x2``: gthread, 4 workers x 2 threads; ``8s``: 8 sync workers (one request each at a
    time, a connection per request)."""
    if config.endswith("s"):
        return int(config[:-1]), 1, "sync"
    workers, threads = (int(x) for x in config.split("x"))
    return workers, threads, "gthread"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one configuration, one short round")
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 3; quick 1)")
    parser.add_argument(
        "--configs",
        help="gunicorn layouts, comma-separated, the headline first: WORKERSxTHREADS (gthread) "
        "or WORKERSs (sync) (default 4x2,8s; quick 4x2)",
    )
    parser.add_argument("--duration", type=float, help="seconds per scenario (default 5; quick 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--webhook-orders",
        type=int,
        default=WEBHOOK_ORDERS,
        help="orders paid per webhook scenario (each event delivered twice)",
    )
    parser.add_argument(
        "--huey-workers", type=int, default=2, help="the Huey consumer's worker threads"
    )
    parser.add_argument(
        "--lock-backend",
        choices=["auto", "redis", "database"],
        default="auto",
        help="marketlink's LOCK_BACKEND (auto: the Redis lock, as CACHES is django-redis)",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        help="the workers' sys.setswitchinterval (default: Python's 0.005 s)",
    )
    parser.add_argument(
        "--slow-stripe",
        action="store_true",
        help="book in phases alternating the Stripe stand-in's latency between 0 and 300 ms "
        "(spread 300ms: booking in payment link mode never waits on Stripe)",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="after the first configuration, the eager payment mode contrast (booking that "
        "calls Stripe)",
    )
    parser.add_argument(
        "--trace-lock",
        action="store_true",
        help="time the hot variant's lock in the workers (bench/tracing.py; adds a little cost)",
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    for url in (args.database_url, args.redis_url):
        if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"{url}: the bench only talks to loopback addresses")
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (3.0 if args.quick else 5.0)
    configs = (args.configs or ("4x2" if args.quick else "4x2,8s")).split(",")
    Bench.concurrency = args.clients

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ["BENCH_LOCK_BACKEND"] = args.lock_backend
    if args.switch_interval:
        os.environ["BENCH_SWITCH_INTERVAL"] = str(args.switch_interval)
    standin = start_standin()
    django_setup(args.database_url, args.redis_url)
    # This process's own marketlink log (the orders it places for the webhooks, the stand-in's
    # request lines) is noise here; gunicorn's workers log to their file as configured.
    logging.getLogger("marketlink").setLevel(logging.WARNING)
    logdir = Path(tempfile.mkdtemp(prefix="marketlink-bench-"))
    started = time.time()
    outcomes: list[Outcome] = []
    memory: dict[str, list[list[float]]] = {}
    print(
        f"marketlink bench: {args.clients} clients, {duration:.0f} s per scenario, "
        f"{rounds} round(s), configs {', '.join(configs)}, "
        f"Huey consumer {args.huey_workers} threads, LOCK_BACKEND {args.lock_backend}, GIL "
        f"switch interval {args.switch_interval or sys.getswitchinterval()} s; logs in {logdir}",
        flush=True,
    )
    load = [os.getloadavg()]

    def record(round_outcomes: list[Outcome], base: Outcome) -> None:
        for outcome in round_outcomes:
            outcome.ratio = round(outcome.rate_per_s / base.rate_per_s, 3) if base.rate_per_s else 0
            outcomes.append(outcome)
            print(table([outcome]).splitlines()[-1], flush=True)
            for note in outcome.notes:
                print(f"      {note}", flush=True)

    def report_tracebacks(*logs: Path) -> None:
        for log in logs:
            errors = log.read_text(errors="replace").count("Traceback")
            if errors:
                print(f"      {errors} tracebacks in {log}", flush=True)

    for config in configs:
        workers, threads, worker_class = server_layout(config)
        from django.db import connections

        connections.close_all()
        reset_stores(args.database_url, args.redis_url)
        seed = migrate_and_seed()
        trace_dir = None
        if args.trace_lock:
            trace_dir = logdir / f"lock-trace-{config}"
            trace_dir.mkdir()
            os.environ["BENCH_TRACE_LOCK"] = str(trace_dir)
        server = Gunicorn(
            workers, threads, free_port(), logdir / f"gunicorn-{config}.log", worker_class
        )
        consumer = HueyConsumer(args.huey_workers, logdir / f"huey-{config}.log")
        try:
            consumer.start()
            server.start()
            bench = Bench(server.port, seed, duration, CpuMeter(server, consumer), standin)
            bench.trace_dir = trace_dir
            bench.warm_up(2.0 if args.quick else 3.0)
            memory[config] = []
            hot: Outcome | None = None
            for rnd in range(1, rounds + 1):
                base = bench.baseline(config, rnd)
                phases = {"spread": 0.0}
                if args.slow_stripe:
                    phases["spread 300ms"] = SLOW_STRIPE_S
                booked = bench.spread(config, rnd, phases)
                # What a user feels at a steady demand, whatever the throughput: open loops at
                # half the bare view's rate (the bare view, bookings), and at half the bookings'
                # own rate (one they sustain).
                offered = base.rate_per_s / 2
                opened = [
                    bench.baseline(config, rnd, open_rate=offered),
                    *bench.spread(config, rnd, {"spread open": 0.0}, open_rate=offered),
                    *bench.spread(
                        config, rnd, {"spread steady": 0.0}, open_rate=booked[0].rate_per_s / 2
                    ),
                ]
                # Enough storms for the rush to last about `duration` at the rate seen.
                rate = (hot or booked[0]).rate_per_s
                hot = bench.hot(config, rnd, max(2, round(rate * duration / CUSTOMERS)))
                hooks = [
                    bench.webhook(config, rnd, scenario, args.webhook_orders)
                    for scenario in WEBHOOK_KINDS
                ]
                record([base, *booked, *opened, hot, *hooks], base)
                memory[config].append(server.worker_rss_mib())
                load.append(os.getloadavg())
                print(
                    f"      worker RSS after round {rnd}: {memory[config][-1]} MiB; load "
                    f"average {' '.join(f'{x:.2f}' for x in load[-1])}",
                    flush=True,
                )
            report_tracebacks(server.log, consumer.log)
        finally:
            server.stop()
            consumer.stop()
        if args.eager and config == configs[0]:
            # The seed's payment mode, for contrast: the Checkout Session is created at Stripe
            # right after each booking commits, inside the request.
            os.environ["BENCH_LINK_MODE"] = "eager"
            eager = Gunicorn(
                workers, threads, free_port(), logdir / f"gunicorn-{config}-eager.log", worker_class
            )
            try:
                eager.start()
                bench = Bench(eager.port, seed, duration, CpuMeter(eager), standin)
                bench.warm_up(1.0, with_webhooks=False)
                label = f"{config} eager"
                # Separate loads: an eager booking waits on Stripe, so a slow phase would spill
                # its backlog into the next one. The ratio is to the link-mode server's last
                # baseline.
                fast = bench.spread(label, 1, {"spread": 0.0})
                slow = bench.spread(label, 1, {"spread 300ms": SLOW_STRIPE_S})
                record([*fast, *slow], base)
                report_tracebacks(eager.log)
            finally:
                eager.stop()
                del os.environ["BENCH_LINK_MODE"]

    print()
    print(
        f"{args.clients} concurrent clients, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.time() - started:.0f} s; load average "
        f"(1 min) at the start and after each round: "
        + ", ".join(f"{one:.2f}" for one, _, _ in load)
    )
    print(table(outcomes))
    print(LEGEND)
    print()
    print("\n".join(verdict(outcomes, memory)))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(
        json.dumps(
            {
                "argv": sys.argv,
                "outcomes": [asdict(o) for o in outcomes],
                "memory": memory,
                "load": load,
            },
            indent=1,
        )
    )
    print(f"\nresults: {path.relative_to(ROOT)}")
    bad = any(o.oversold or not o.consistent for o in outcomes)
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; gunicorn and the Huey consumer stopped", file=sys.stderr)
        sys.exit(130)
