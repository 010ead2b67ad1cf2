#!/usr/bin/env python
"""The bench's scenarios on simulated hosts, side by side in one run: through PgBouncer against
direct connections, and through two app hosts against one (root: Linux network namespaces).

    python bench/hosts.py                          # 2 rounds of each configuration, ~5 min
    python bench/hosts.py --rounds 1 --duration 3  # a short look

It builds the scale rig's machines (``tests/scale/hosts.py``: a data host, two app hosts and a
client, network namespaces joined by a bridge; only addresses inside them are used) and runs
itself again on the client host. The data host runs the scale rig's stores
(``tests/scale/scale_rig.py``): a private PostgreSQL cluster, PgBouncer in front of it in
transaction pooling mode (``--pool`` server connections) and Redis. Each round runs, one
configuration after the other, ``bench/run.py``'s scenarios (baseline, spread, hot, webhook pi,
webhook cs; ``bench/scenarios.py``) with its load client at 32 connections:

- ``1h direct``: one app host, gunicorn 4x2 and a Huey consumer (2 threads), on PostgreSQL;
- ``1h bouncer``: the same through PgBouncer;
- ``2h bouncer``: two app hosts, gunicorn 2x2 and a consumer each (as many workers in all), the
  client's connections alternating between them (a load balancer's round robin), through
  PgBouncer.

Every host is a namespace of this one machine: its two cores serve all of them, so a second
host cannot add capacity here; the comparison shows what the extra hop and processes cost.
The CPU column's ``pg`` term includes PgBouncer's own CPU. The runner itself (seed, checks)
reaches PostgreSQL directly. Results also go to ``bench/results/hosts-*.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
sys.path += [str(ROOT / "tests" / name) for name in ("scale", "support", "faults")]

import hosts  # noqa: E402  (tests/scale/hosts.py)
from scale_rig import POSTGRES_PORT, REDIS_PORTS, DataHost  # noqa: E402

from bench.processes import CpuMeter, Gunicorn, HueyConsumer, _cpu_seconds  # noqa: E402
from bench.report import LEGEND, Outcome, table  # noqa: E402
from bench.scenarios import Bench  # noqa: E402
from bench.stack import (  # noqa: E402
    CUSTOMERS,
    WEBHOOK_KINDS,
    django_setup,
    migrate_and_seed,
    reset_stores,
    start_standin,
)

DATA = hosts.ADDRESSES["data"]
PORT = 8000  # each app host is a namespace of its own: the port is free there
# label: (app hosts, gunicorn workers, threads per host, through PgBouncer)
CONFIGS = {
    "1h direct": (["app1"], 4, 2, False),
    "1h bouncer": (["app1"], 4, 2, True),
    "2h bouncer": (["app1", "app2"], 2, 2, True),
}
SCENARIOS = ["baseline", "spread", "hot", *WEBHOOK_KINDS]


class Group:
    """Several gunicorns (or consumers) read as one by ``CpuMeter`` and ``Bench``."""

    def __init__(self, members: list[Any]) -> None:
        self.members = members

    def worker_pids(self) -> list[int]:
        return [pid for member in self.members for pid in member.worker_pids()]

    def connections_per_worker(self) -> list[int]:
        return [n for member in self.members for n in member.connections_per_worker()]

    def pids(self) -> list[int]:
        return [pid for member in self.members for pid in member.pids()]


class PoolSampler:
    """PgBouncer's ``SHOW POOLS`` for the bench database every 0.1 s while a scenario runs: the
    most server connections in use at once, the most clients waiting for one, the longest
    wait. How many server connections the load needs, against how many client connections the
    workers hold."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.most = {"sv_active": 0, "cl_waiting": 0, "maxwait_us": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PoolSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True, prepare_threshold=None) as admin:
            while not self._stop.wait(0.1):
                cursor = admin.execute("SHOW POOLS")
                names = [column.name for column in cursor.description or []]
                for row in cursor.fetchall():
                    pool = dict(zip(names, row, strict=True))
                    if pool["database"] != "ml_bench":
                        continue
                    waited = pool["maxwait"] * 1_000_000 + pool["maxwait_us"]
                    figures = {**pool, "maxwait_us": waited}
                    for key in self.most:
                        self.most[key] = max(self.most[key], int(figures[key]))

    def note(self) -> str:
        most = self.most
        return (
            f"PgBouncer: at most {most['sv_active']} server connections in use, "
            f"{most['cl_waiting']} clients waiting, longest wait {most['maxwait_us'] / 1000:.1f} ms"
        )


class Meter(CpuMeter):
    """``CpuMeter`` with PgBouncer's CPU counted with PostgreSQL's."""

    def __init__(self, server: Any, consumer: Any, pooler: int | None) -> None:
        super().__init__(server, consumer)
        self.pooler = pooler

    def snapshot(self, postgres_pids: list[int] | None = None) -> dict[str, float]:
        figures = super().snapshot(postgres_pids)
        if self.pooler is not None:
            figures["postgres"] += _cpu_seconds(self.pooler)
        return figures


def outside(argv: list[str]) -> int:
    """Build the hosts, run the bench on the client host, remove the hosts whatever happens."""
    reason = hosts.missing()
    if reason:
        raise SystemExit(reason)
    hosts.destroy_stale()
    run = str(os.getpid())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        hosts.create(run)
        command = [*hosts.in_host(run, "client"), sys.executable, __file__, "--inside", run]
        return subprocess.run([*command, *argv], check=False).returncode
    finally:
        hosts.destroy(run)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per scenario")
    parser.add_argument("--pool", type=int, default=20, help="PgBouncer's default_pool_size")
    parser.add_argument("--webhook-orders", type=int, default=100)
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.inside:
        return outside(argv)
    run = args.inside
    folder = Path(tempfile.mkdtemp(prefix="marketlink-bench-hosts-"))
    folder.chmod(0o755)  # the cluster's and PgBouncer's owner (postgres) must reach inside
    direct = f"postgres://postgres@{DATA}:{POSTGRES_PORT}/ml_bench"
    redis_url = f"redis://{DATA}:{REDIS_PORTS[0]}/0"
    os.environ["ALLOWED_HOSTS"] = ",".join(hosts.ADDRESSES.values())
    standin = start_standin()  # the runner's: receiving a webhook or booking never calls it
    django_setup(direct, redis_url)
    # This process's own marketlink log (the orders it places for the webhooks, the stand-in's
    # request lines) is noise here, as in run.py.
    logging.getLogger("marketlink").setLevel(logging.WARNING)

    data = DataHost(run, folder, pool_size=args.pool).start()
    bouncer = data.bouncer.url("ml_bench")
    outcomes: list[Outcome] = []
    load = [os.getloadavg()]
    started = time.time()
    print(f"marketlink bench on hosts: {args.rounds} round(s), {args.duration:.0f} s per "
          f"scenario, PgBouncer pool {args.pool}; logs in {folder}", flush=True)  # fmt: skip
    try:
        reset_stores(direct, redis_url)
        seed = migrate_and_seed()
        for rnd in range(1, args.rounds + 1):
            for label, config in CONFIGS.items():
                urls = (bouncer, direct)
                outcomes += _round(label, config, rnd, args, seed, standin, data, urls, run)
                load.append(os.getloadavg())
                print(f"      load average {' '.join(f'{x:.2f}' for x in load[-1])}", flush=True)
    finally:
        data.stop()
    print(f"\n{os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{time.time() - started:.0f} s; load average (1 min) at the start and after each "
          f"configuration: {', '.join(f'{one:.2f}' for one, _, _ in load)}")  # fmt: skip
    print(table(outcomes))
    print(LEGEND)
    print(side_by_side(outcomes))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"hosts-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    document = {"argv": sys.argv, "outcomes": [asdict(o) for o in outcomes], "load": load}
    path.write_text(json.dumps(document, indent=1))
    print(f"\nresults: {path.relative_to(ROOT)}")
    return 1 if any(o.oversold or not o.consistent for o in outcomes) else 0


def _round(
    label: str,
    config: tuple[list[str], int, int, bool],
    rnd: int,
    args: argparse.Namespace,
    seed: dict[str, Any],
    standin: Any,
    data: Any,
    urls: tuple[str, str],
    run: str,
) -> list[Outcome]:
    """One configuration's scenarios: its hosts' gunicorns and consumers started on the
    database URL it uses (``urls``: through PgBouncer, direct), and stopped after."""
    names, workers, threads, pooled = config
    os.environ["DATABASE_URL"] = urls[0] if pooled else urls[1]
    if pooled:
        os.environ["DATABASE_POOLING"] = "transaction"
    else:
        os.environ.pop("DATABASE_POOLING", None)
    servers, consumers = [], []
    try:
        for name in names:
            log = f"{data.folder}/{label.replace(' ', '-')}-{rnd}-{name}"
            where = {"host": hosts.ADDRESSES[name], "prefix": hosts.in_host(run, name)}
            server = Gunicorn(workers, threads, PORT, Path(f"{log}-gunicorn.log"), **where)
            consumer = HueyConsumer(2, Path(f"{log}-huey.log"), prefix=where["prefix"])
            consumers.append(consumer)
            consumer.start()
            servers.append(server)
            server.start()
        pooler = data.bouncer.proc.pid if pooled else None
        meter = Meter(Group(servers), Group(consumers), pooler)
        bench = Bench(PORT, seed, args.duration, meter, standin)
        bench.targets = [(server.host, PORT) for server in servers]
        bench.host_header = f"{servers[0].host}:{PORT}"
        bench.warm_up(2.0)
        admin = data.bouncer.url("pgbouncer")

        def sampled(scenario: Any, *more: Any) -> Outcome:
            if not pooled:
                return scenario(label, rnd, *more)
            with PoolSampler(admin) as sampler:
                outcome = scenario(label, rnd, *more)
            outcome.notes.append(sampler.note())
            outcome.pool = dict(sampler.most)
            return outcome

        base = sampled(bench.baseline)
        booked = [sampled(lambda *a: bench.spread(*a)[0])]
        storms = max(2, round(booked[0].rate_per_s * args.duration / CUSTOMERS))
        hot = sampled(bench.hot, storms)
        hooks = [sampled(bench.webhook, kind, args.webhook_orders) for kind in WEBHOOK_KINDS]
    finally:
        for member in [*servers, *consumers]:
            member.stop()
    done = [base, *booked, hot, *hooks]
    for outcome in done:
        outcome.ratio = round(outcome.rate_per_s / base.rate_per_s, 3) if base.rate_per_s else 0
        print(table([outcome]).splitlines()[-1], flush=True)
        for note in outcome.notes:
            print(f"      {note}", flush=True)
    return done


def side_by_side(outcomes: list[Outcome]) -> str:
    """Median rate and server CPU per request of each scenario, per configuration."""
    labels = list(CONFIGS)
    lines = [
        "\nmedian over the rounds: rate/s (ratio to its own baseline) and server CPU ms/request",
        "| scenario | " + " | ".join(labels) + " |",
        "|---" * (len(labels) + 1) + "|",
    ]
    for scenario in SCENARIOS:
        cells = []
        for label in labels:
            mine = [o for o in outcomes if o.config == label and o.scenario == scenario]
            if not mine:
                cells.append("-")
                continue
            rate = statistics.median(o.rate_per_s for o in mine)
            ratio = statistics.median(o.ratio or 0 for o in mine)
            cpu = statistics.median(sum(o.cpu_ms_per_request.values()) for o in mine)
            cells.append(f"{rate:.0f}/s ({ratio:.0%}), {cpu:.2f} ms")
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    pooled = [o for o in outcomes if getattr(o, "pool", None)]
    for label in labels:
        mine = [o.pool for o in pooled if o.config == label]  # type: ignore[attr-defined]
        if mine:
            lines.append(
                f"{label}: PgBouncer server connections in use at most "
                f"{max(p['sv_active'] for p in mine)}, clients waiting at most "
                f"{max(p['cl_waiting'] for p in mine)}, longest wait "
                f"{max(p['maxwait_us'] for p in mine) / 1000:.1f} ms"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
