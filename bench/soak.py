#!/usr/bin/env python
"""marketlink's soak: ten minutes of a shop's mixed traffic at a steady rate, with one Redis
restart in the middle, then the invariants.

    python bench/soak.py                       # 10 minutes at 25 operations a second
    python bench/soak.py --minutes 2 --rate 15 # a short look

The stack is production's shape: gunicorn (gthread, 4 workers x 2 threads) on PostgreSQL and a
Redis of the soak's own (a ``redis-server`` it starts on a free port, so the restart touches no
one else's), the example site's Huey consumer with its periodic jobs (expiry, the outbox's drain,
reconcile), and the Stripe gateway pointed at the Stripe stand-in, which delivers its webhooks to
the site as Stripe does. Reservations last 120 s (``BENCH_RESERVATION_TTL``) so unpaid bookings
lapse during the soak and the expiry job cancels them; an invoice no drainer ran for 60 s is
reconcile's to send (``BENCH_INVOICE_GRACE_PERIOD``). Throttles and per-customer limits are
lifted, as for the benchmark (``bench/settings.py``).

Operations are started at a steady rate (an open loop: a slow answer does not slow the
arrivals) by a pool of threads; see ``bench/soak_traffic.py`` for the mix. Halfway, Redis is
stopped for 5 s and started again, empty (no persistence: the queue, the locks and the cache are
lost, as when a cache node is replaced).

At the end the traffic stops, ``marketlink reconcile`` runs once as an operator would (it sends
any invoice still owed that no drainer ran), the consumer is given time to drain, and the
shared invariants (``tests/support/invariants.py``) are checked against the database and the
stand-in. Reported: throughput and p50/p95/p99 per operation, the answers by status, each
worker's memory at the start and the end, and every broken invariant. Exit 1 if any invariant is
broken or any answer was a 5xx outside the Redis restart. Results also go to
``bench/results/soak-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
# The fault suite's private Redis and HTTP call, and the invariants every proof ends with.
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
sys.path += [str(ROOT / "tests" / "support"), str(ROOT / "tests" / "faults")]

from bench.processes import Gunicorn, HueyConsumer, free_port  # noqa: E402
from bench.soak_report import percentiles, render  # noqa: E402
from bench.soak_traffic import Sample, Shop  # noqa: E402
from bench.stack import (  # noqa: E402
    django_setup,
    migrate_and_seed,
    new_variants,
    reset_stores,
    start_standin,
)

SOAK_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ml_bench_soak"
RESTART_DOWN_S = 5.0
SOAK_VARIANTS = 30
SOAK_STOCK = 150  # 4,500 units: bookings sell some variants out near the end of a 10-minute run
DRAIN_S = 180.0  # how long the consumer may take to send the invoices owed at the end


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=25.0, help="operations started a second")
    parser.add_argument("--threads", type=int, default=24, help="the client's thread pool")
    parser.add_argument("--config", default="4x2", help="gunicorn WORKERSxTHREADS")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("SOAK_DATABASE_URL", SOAK_DATABASE_URL),
        help="dropped and recreated (its name must say 'bench')",
    )
    args = parser.parse_args(argv)
    workers, threads = (int(x) for x in args.config.split("x"))

    from fault_rig import PrivateRedis

    logs = Path(tempfile.mkdtemp(prefix="marketlink-soak-"))
    redis = PrivateRedis(logs).start()
    os.environ.update(
        BENCH_RESERVATION_TTL="120",
        BENCH_INVOICE_GRACE_PERIOD="60",
        MARKETLINK_LOG_LEVEL="WARNING",
        EMAIL_BACKEND="bench.mail.DiscardingBackend",
    )
    reset_stores(args.database_url, redis.url(0))
    standin = start_standin()
    django_setup(args.database_url, redis.url(0))
    seeded = migrate_and_seed()
    variants = new_variants(seeded["vendor"], "soak", SOAK_VARIANTS, SOAK_STOCK)
    port = free_port()
    site = f"http://127.0.0.1:{port}"
    standin.webhook_url = f"{site}/api/webhooks/payment/"
    standin.auto_deliver = True
    server = Gunicorn(workers, threads, port, logs / "gunicorn.log")
    consumer = HueyConsumer(2, logs / "huey.log", periodic=True)
    print(f"soak: {args.minutes:g} min at {args.rate:g} ops/s on gunicorn {args.config}; "
          f"logs in {logs}", flush=True)  # fmt: skip
    try:
        server.start()
        consumer.start()
        shop = Shop(
            site,
            standin,
            seeded["tokens"],
            sorted({str(v.service_id) for v in variants}),
            [str(v.id) for v in variants],
            args.seed,
        )
        memory = {"booted": _memory(server, consumer)}
        began = time.time()
        restart = _restart_redis_halfway(redis, args.minutes * 30)
        sampler = _sample_memory_each_minute(server, consumer, memory)
        late = _steady_load(shop, args.rate, args.minutes * 60, args.threads)
        ended = time.time()
        sampler.set()
        restart.join()
        memory["at the end"] = _memory(server, consumer)
        reconciles, problems = _settle(standin, logs)
    finally:
        consumer.stop()
        server.stop()
        standin.stop()
        redis.stop()

    window = (began + args.minutes * 30, began + args.minutes * 30 + RESTART_DOWN_S + 5)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "minutes": args.minutes,
        "rate": args.rate,
        "config": args.config,
        "seconds": round(ended - began, 1),
        "late_starts": late,
        "operations": percentiles(_all_samples(shop, standin), ended - began, window),
        "memory_mib": memory,
        "reconcile": reconciles,
        "invariants": problems,
        "load_average": os.getloadavg(),
    }
    print(render(result))
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    (out / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=2))
    errors_outside = sum(op["5xx outside restart"] for op in result["operations"].values())
    return 1 if problems or errors_outside else 0


def _steady_load(shop: Shop, rate: float, seconds: float, threads: int) -> int:
    """Start ``rate`` operations a second for ``seconds``; returns how many started more than a
    second behind their time (the client, not the site, falling behind)."""
    late = 0
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="soak") as pool:
        for n in range(int(rate * seconds)):
            due = start + n / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -1:
                late += 1
            pool.submit(shop.run, shop.pick())
    return late


def _restart_redis_halfway(redis: Any, after_s: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(after_s)
        print(f"soak: Redis stopped for {RESTART_DOWN_S:g} s", flush=True)
        redis.stop()
        time.sleep(RESTART_DOWN_S)
        redis.start()
        print("soak: Redis started again, empty", flush=True)

    thread = threading.Thread(target=restart, name="redis-restart", daemon=True)
    thread.start()
    return thread


def _sample_memory_each_minute(
    server: Gunicorn, consumer: HueyConsumer, memory: dict[str, Any]
) -> threading.Event:
    """Each process's RSS at every whole minute of the load, until the returned event is set:
    growth that levels off is warm-up, growth that goes on is a leak."""
    done = threading.Event()

    def sample() -> None:
        minute = 0
        while not done.wait(60):
            minute += 1
            memory[f"{minute} min"] = _memory(server, consumer)

    threading.Thread(target=sample, name="memory", daemon=True).start()
    return done


def _memory(server: Gunicorn, consumer: HueyConsumer) -> dict[str, float | None]:
    sizes: dict[str, float | None] = {}
    for pid, size in zip(server.worker_pids(), server.worker_rss_mib(), strict=False):
        sizes[f"worker {pid}"] = size
    sizes["huey consumer"] = consumer.rss_mib()
    return sizes


def _reconcile(logs: Path, run: int) -> dict[str, Any]:
    """``marketlink reconcile --json`` once, as the operator's check after an incident."""
    command = [str(Path(sys.executable).parent / "marketlink"), "--settings=bench.settings"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")])}
    done = subprocess.run(
        # Every order of the soak checked: past the default --limit, reconcile stops and exits 1.
        [*command, "reconcile", "--json", "--limit", "1000000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    (logs / f"reconcile-{run}.json").write_text(done.stdout + done.stderr)
    try:
        summary = json.loads(done.stdout)["summary"]
    except (ValueError, KeyError):
        return {"exit": done.returncode, "output": (done.stdout + done.stderr)[-500:]}
    found = {kind: counts for kind, counts in summary["by_kind"].items() if counts["found"]}
    return {"exit": done.returncode, "checked": summary["checked"], "found": found}


def _settle(standin: Any, logs: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Reconcile, then give the consumer time to send what it owes; reconcile again while
    something is still owed (an invoice whose wake Redis lost waits for the periodic drain, or
    for reconcile once ``INVOICE_GRACE_PERIOD`` passed), until the invariants hold or
    ``DRAIN_S`` passed. Returns each reconcile's findings and what still breaks the invariants."""
    from django.db import close_old_connections
    from invariants import invariant_violations

    deadline = time.monotonic() + DRAIN_S
    reconciles = []
    while True:
        reconciles.append(_reconcile(logs, len(reconciles) + 1))
        time.sleep(10)
        close_old_connections()
        problems = invariant_violations(standin=standin, settled=True)
        if not problems or time.monotonic() > deadline:
            return reconciles, problems
        time.sleep(20)


def _all_samples(shop: Shop, standin: Any) -> list[Sample]:
    """The client's timed requests and the stand-in's timed deliveries: an event's first
    delivery is a ``webhook``, each later one a ``webhook duplicate``."""
    samples = list(shop.samples)
    seen: set[str] = set()
    for delivery in standin.deliveries:
        kind = "webhook duplicate" if delivery.event_id in seen else "webhook"
        seen.add(delivery.event_id)
        samples.append(Sample(kind, delivery.status, delivery.seconds, delivery.started))
    return samples


if __name__ == "__main__":
    sys.exit(main())
