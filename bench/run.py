#!/usr/bin/env python
"""marketlink's load benchmark: the example site under gunicorn on PostgreSQL + Redis.

    python bench/run.py            # full run: 3 gunicorn configurations x 3 rounds (~5 minutes)
    python bench/run.py --quick    # one configuration, one short round (~35 seconds)

It starts a Stripe stand-in (``marketlink.testing.stripe_server.StripeStandIn``) in this process
and serves the site with ``PAYMENT_GATEWAY = "stripe"`` pointed at it. For each gunicorn
configuration it (re)creates a dedicated database, migrates and seeds it through the ORM and
marketlink's services, starts gunicorn, and then, each round, runs five scenarios with the same
closed-loop client (``bench/loadclient.py``) at 32 concurrent keep-alive connections:

- ``baseline``: ``POST /bench/insert/``, a bare Django view doing one INSERT (``bench/views.py``);
- ``spread``: ``POST /api/orders/`` over many variants with ample stock, 50 customers' tokens;
- ``spread 300ms``: the same with the Stripe stand-in answering after 300 ms (booking in payment
  link mode never calls Stripe: the stand-in must see no request);
- ``hot``: the same against one variant whose stock is about half the requests sent;
- ``webhook``: ``POST /api/webhooks/payment/``, Stripe-signed ``checkout.session.completed`` and
  ``payment_intent.succeeded`` events of pending orders, each delivered three times, the copies
  shuffled together so that they are in flight at once.

After each scenario it checks the database (oversold units, stock consistency, refusals while stock
remained, 2xx count = orders written; for the webhooks: every order paid exactly once, every event
stored and processed once, one invoice task per order) and after each round it reads every
worker's RSS. On the first configuration it then restarts gunicorn in eager payment mode (the
Checkout Session created at booking) and books at 0 and 300 ms of Stripe latency, for contrast.
See ``bench/README.md`` for the method and the figures. Results also go to
``bench/results/*.json``.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import itertools
import json
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Run as a script, ``bench/`` itself is sys.path[0]; import it as the ``bench`` package instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench import tracing  # noqa: E402
from bench.loadclient import LoadResult, build_request, percentile, run_load  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/marketlink_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
HOST = "127.0.0.1"
CUSTOMERS = 50
SPREAD_VARIANTS = 500
SPREAD_STOCK = 1_000_000  # never runs out: every 409 in this scenario is a wrong refusal
TARGET_P99_MS = 150.0
# Seconds between the client's connection starts: a burst of 32 connects tends to be accepted by
# one gunicorn worker (32/0), which then serves everything under one GIL at half the rate.
CONNECT_STAGGER_S = 0.002
# The Stripe stand-in the site talks to (STRIPE_API_BASE) and the secrets both sides share.
STANDIN_API_KEY = "sk_test_marketlink_bench"
STANDIN_WEBHOOK_SECRET = "whsec_marketlink_bench"
SLOW_STRIPE_S = 0.3
TARGET_SLOW_STRIPE = 0.10  # booking with a 300 ms Stripe within 10% of its rate at 0 ms
WEBHOOK_COPIES = 3  # every event is delivered this many times
WEBHOOK_BLOCK = 8  # the deliveries of this many orders are shuffled together
WEBHOOK_VARIANTS = 50
TARGET_WEBHOOK_RATIO = 0.40


# --------------------------------------------------------------------------------------------
# Processes


def _parent_death_signal() -> None:
    """In the child: die with the runner even if the runner is killed hard."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Gunicorn:
    def __init__(self, workers: int, threads: int, port: int, log: Path) -> None:
        self.workers, self.threads, self.port, self.log = workers, threads, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            f"--pythonpath={ROOT},{ROOT / 'example_project'}",
            f"--bind={HOST}:{self.port}",
            "--worker-class=gthread",
            f"--workers={self.workers}",
            f"--threads={self.threads}",
            "--keep-alive=5",
            f"--error-logfile={self.log}",
            "--log-level=warning",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_parent_death_signal,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    sock.sendall(b"GET /bench/insert/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/"):
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn did not answer within 30 s; see {self.log}")
        # Every worker booted (they import the site after the master binds).
        while len(self.worker_pids()) < self.workers and time.monotonic() < deadline:
            time.sleep(0.2)

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                pids.append(int(entry.name))
        return sorted(pids)

    def connections_per_worker(self) -> list[int]:
        """The established client connections each worker holds now. The workers race to
        accept, so how the client's connections split between them is chance, and it moves
        the rates: a worker is one GIL, and the one holding most connections saturates first."""
        port = f":{self.port:04X}"
        sockets = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == "01" and fields[1].endswith(port):  # ESTABLISHED, our port
                    sockets.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self.worker_pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            held = 0
            for fd in fds:
                try:
                    held += os.readlink(fd) in sockets
                except OSError:
                    continue
            counts.append(held)
        return counts

    def worker_rss_mib(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(round(int(line.split()[1]) / 1024, 1))
            except OSError:
                continue
        return sizes

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # gunicorn: quick shutdown
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _pids_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds spent by the gunicorn workers, PostgreSQL (this database's backends and the
    shared writer processes) and Redis, read from /proc around a scenario."""

    def __init__(self, server: Gunicorn) -> None:
        self.server = server

    def _postgres_pids(self) -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() "
                "AND pid <> pg_backend_pid()) OR backend_type IN "
                "('walwriter', 'checkpointer', 'background writer')"
            )
            return [row[0] for row in cursor.fetchall()]

    def snapshot(self, postgres_pids: list[int] | None = None) -> dict[str, float]:
        if postgres_pids is None:
            postgres_pids = self._postgres_pids()
        return {
            "app": sum(_cpu_seconds(p) for p in self.server.worker_pids()),
            "postgres": sum(_cpu_seconds(p) for p in postgres_pids),
            "redis": sum(_cpu_seconds(p) for p in _pids_named("redis-server")),
        }

    @staticmethod
    def machine_busy() -> float:
        """CPU seconds the whole machine has been busy (all processes and the kernel)."""
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks[:8]) - idle) / CLOCK_TICKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Database and data


def reset_stores(database_url: str, redis_url: str) -> None:
    """Drop and recreate the bench database, empty the bench Redis db."""
    import psycopg
    import redis

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the bench database's name must say 'bench'")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(redis_url).flushdb()


def start_standin() -> Any:
    """The Stripe stand-in, in this process, and the environment ``bench/settings.py`` reads to
    point the site's Stripe gateway at it (set before Django starts here and in gunicorn)."""
    from marketlink.testing.stripe_server import StripeStandIn

    standin = StripeStandIn(
        api_key=STANDIN_API_KEY, webhook_secret=STANDIN_WEBHOOK_SECRET, auto_deliver=False
    ).start()
    os.environ.update(
        BENCH_GATEWAY="stripe",
        BENCH_STRIPE_API_BASE=standin.api_base,
        BENCH_STRIPE_SECRET_KEY=STANDIN_API_KEY,
        BENCH_STRIPE_WEBHOOK_SECRET=STANDIN_WEBHOOK_SECRET,
    )
    return standin


def django_setup(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def migrate_and_seed() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from marketlink.accounts.models import Account, Role
    from marketlink.accounts.services import tokens_issue
    from marketlink.vendors.services import vendor_profile_create

    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    # Users with unusable passwords straight through the ORM: hashing 51 real passwords would
    # take longer than the quick run; the bearer tokens are all the storm needs.
    vendor_user = user_model._default_manager.create_user("vendor@bench.example", None)
    Account.objects.create(user=vendor_user, role=Role.VENDOR, email="vendor@bench.example")
    vendor = vendor_profile_create(user=vendor_user, business_name="Bench Garage")
    tokens, customers = [], []
    for number in range(CUSTOMERS):
        email = f"customer{number}@bench.example"
        user = user_model._default_manager.create_user(email, None)
        Account.objects.create(user=user, role=Role.CUSTOMER, email=email)
        tokens.append(tokens_issue(user=user)["access"])
        customers.append(user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"vendor": vendor, "tokens": tokens, "customers": customers}


def paid_checkouts(
    standin: Any, vendor: Any, customers: list[Any], label: str, count: int, base_url: str
) -> tuple[list[Any], list[dict[str, Any]]]:
    """``count`` pending orders, each paid at the Stripe stand-in: placed with ``order_place``,
    their payment link opened with ``checkout_open`` (the site's Stripe gateway creates the
    Checkout Session at the stand-in, as when a customer opens the link), then paid with
    ``standin.pay``, which emits ``checkout.session.completed`` and ``payment_intent.succeeded``
    without delivering them. Returns the orders and their events, in emission order. About
    4.5 ms per order, mostly the stripe SDK and the stand-in, in this process."""
    from django.db import connection

    from marketlink.orders.services import order_place
    from marketlink.payments.services import checkout_open

    variants = new_variants(vendor, label, WEBHOOK_VARIANTS, SPREAD_STOCK)
    orders = []
    # Each service call commits by itself: this connection need not wait for the disk at each
    # commit (the rows are the same, only their durability is not).
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        for number in range(count):
            customer = customers[number % len(customers)]
            order, _ = order_place(
                customer=customer,
                customer_email=customer.email,
                variant_id=variants[number % len(variants)].id,
            )
            checkout_open(order=order, base_url=base_url)
            standin.pay(order.checkout_session_id)
            orders.append(order)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
    mine = {str(order.id) for order in orders}
    events = [e for e in standin.events if e["data"]["object"]["metadata"].get("order_id") in mine]
    return orders, events


def new_variants(vendor: Any, label: str, count: int, stock: int) -> list[Any]:
    from marketlink.catalog.models import ServiceVariant
    from marketlink.catalog.services import service_create

    service = service_create(vendor=vendor, name=f"bench {label}")
    return ServiceVariant.objects.bulk_create(
        ServiceVariant(
            service=service,
            name=f"{label} {number}",
            price=Decimal("25.00"),
            estimated_minutes=30,
            stock=stock,
        )
        for number in range(count)
    )


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass
class Outcome:
    config: str
    round: int
    scenario: str
    requests: int
    elapsed_s: float
    ok: int
    ok_per_s: float
    req_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p99_ok_ms: float
    statuses: dict[str, int]
    server_errors: int
    client_errors: int
    oversold: int
    refused_while_available: int
    consistent: bool
    client_cpu_pct: float
    notes: list[str] = field(default_factory=list)
    ratio: float | None = None
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    stripe_calls: int | None = None  # requests the Stripe stand-in got during the scenario
    connections: list[int] = field(default_factory=list)  # per worker, 1 s into the load
    # Machine CPU not spent by gunicorn's workers, PostgreSQL, Redis or the client, in % of all
    # cores: other processes (noise) plus kernel work not charged to a process.
    other_cpu_pct: float = 0.0


def _summarize(config: str, rnd: int, scenario: str, result: LoadResult) -> Outcome:
    responses = result.responses
    statuses = Counter(r.status for r in responses)
    answered = sorted((r.received - r.sent) * 1000 for r in responses if r.status)
    ok = [r for r in responses if 200 <= r.status < 300]
    ok_latency = sorted((r.received - r.sent) * 1000 for r in ok)
    # Successes per second over the time they took: for the hot storm, from the first request
    # to the last successful booking (the refusals after the sell-out do not dilute the rate).
    ok_span = max((r.received for r in ok), default=result.started) - result.started
    return Outcome(
        config=config,
        round=rnd,
        scenario=scenario,
        requests=len(responses),
        elapsed_s=round(result.elapsed, 2),
        ok=len(ok),
        ok_per_s=round(len(ok) / ok_span, 1) if ok_span > 0 else 0.0,
        req_per_s=round(len(responses) / result.elapsed, 1) if result.elapsed else 0.0,
        p50_ms=round(percentile(answered, 0.50), 1),
        p95_ms=round(percentile(answered, 0.95), 1),
        p99_ms=round(percentile(answered, 0.99), 1),
        p99_ok_ms=round(percentile(ok_latency, 0.99), 1),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        server_errors=sum(v for k, v in statuses.items() if k >= 500),
        client_errors=statuses.get(0, 0),
        oversold=0,
        refused_while_available=0,
        consistent=True,
        client_cpu_pct=round(100 * result.client_cpu / result.elapsed, 1) if result.elapsed else 0,
        notes=[f"HTTP {k}: {v[:200]!r}" for k, v in result.samples.items()],
    )


PHASE_S = 0.5  # the length of one phase when a scenario alternates the Stripe latency
LEAD_S = 0.5  # not measured at the start of an interleaved load


@dataclass
class Phase:
    """The part of an interleaved load that ran at one latency."""

    result: LoadResult
    seconds: float
    cpu: dict[str, float]  # CPU seconds of app, postgres, redis
    busy: float  # the machine's busy CPU seconds


class PhaseSwitcher:
    """Sets the Stripe stand-in's latency to each of ``latencies`` in turn, ``phases`` times
    ``PHASE_S`` seconds in all, from a thread, while a load runs; reads the CPU counters at each
    switch, so that the load's answers (by arrival time) and CPU can be split by latency. The
    first ``LEAD_S`` seconds (connections opening, the first answers) and the answers after the
    last phase (the load draining) are left out, so every phase runs at full load."""

    def __init__(
        self, standin: Any, meter: CpuMeter, latencies: list[float], seconds: float
    ) -> None:
        self.standin, self.meter, self.latencies = standin, meter, latencies
        self.phases = len(latencies) * max(1, round(seconds / PHASE_S / len(latencies)))
        # (switch time, index of the latency set then, None at the end; CPU; machine busy)
        self.marks: list[tuple[float, int | None, dict[str, float], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phase-switcher", daemon=True)

    @property
    def load_seconds(self) -> float:
        """How long the load must run to cover the lead-in, every phase and a little more."""
        return LEAD_S + self.phases * PHASE_S + 0.3

    def __enter__(self) -> PhaseSwitcher:
        self._postgres = self.meter._postgres_pids()  # read here: the thread has no connection
        self.standin.latency = self.latencies[0]
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.standin.latency = 0.0

    def _mark(self, index: int | None) -> None:
        snapshot = self.meter.snapshot(self._postgres)
        self.marks.append((time.monotonic(), index, snapshot, self.meter.machine_busy()))

    def _run(self) -> None:
        next_at = time.monotonic() + LEAD_S
        for phase in range(self.phases + 1):
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return  # the load ended early: split() finds too few marks
            index = phase % len(self.latencies) if phase < self.phases else None
            if index is not None:
                self.standin.latency = self.latencies[index]
            self._mark(index)
            next_at += PHASE_S

    def split(self, result: LoadResult) -> tuple[list[Phase], list[Any]]:
        """Each latency's phases, and the answers outside every phase."""
        if len(self.marks) != self.phases + 1:
            raise RuntimeError("the load ended before its last phase")
        times = [mark[0] for mark in self.marks]
        responses: list[list[Any]] = [[] for _ in self.latencies]
        outside = []
        for response in result.responses:
            at = bisect.bisect_right(times, response.received) - 1
            if 0 <= at < self.phases:
                index = self.marks[at][1]
                assert index is not None
                responses[index].append(response)
            else:
                outside.append(response)
        parts = []
        for index in range(len(self.latencies)):
            seconds, busy = 0.0, 0.0
            cpu = dict.fromkeys(self.marks[0][2], 0.0)
            for start, end in itertools.pairwise(self.marks):
                if start[1] == index:
                    seconds += end[0] - start[0]
                    busy += end[3] - start[3]
                    for key in cpu:
                        cpu[key] += end[2][key] - start[2][key]
            # The client's CPU is only known for the whole load: shared by answers.
            share = len(responses[index]) / max(1, len(result.responses))
            part = LoadResult(
                responses=responses[index],
                started=result.started,
                elapsed=seconds,
                client_cpu=result.client_cpu * share,
                reconnects=0,
                samples=result.samples,
            )
            parts.append(Phase(part, seconds, cpu, busy))
        return parts, outside

    @staticmethod
    def summarize(config: str, rnd: int, scenario: str, phase: Phase) -> Outcome:
        outcome = _summarize(config, rnd, scenario, phase.result)
        count = max(1, outcome.requests)
        outcome.elapsed_s = round(phase.seconds, 2)
        outcome.ok_per_s = round(outcome.ok / phase.seconds, 1) if phase.seconds else 0.0
        outcome.req_per_s = round(outcome.requests / phase.seconds, 1) if phase.seconds else 0.0
        outcome.client_cpu_pct = round(100 * phase.result.client_cpu / phase.seconds, 1)
        outcome.cpu_ms_per_request = {k: round(1000 * v / count, 2) for k, v in phase.cpu.items()}
        ours = sum(phase.cpu.values()) + phase.result.client_cpu
        capacity = phase.seconds * (os.cpu_count() or 1)
        outcome.other_cpu_pct = round(100 * (phase.busy - ours) / capacity, 1)
        outcome.notes.append(
            f"{outcome.requests} answers in phases of {PHASE_S} s totalling {phase.seconds:.1f} s"
        )
        return outcome


class Bench:
    def __init__(
        self, port: int, seed: dict[str, Any], duration: float, meter: CpuMeter, standin: Any
    ) -> None:
        self.port, self.duration, self.meter, self.standin = port, duration, meter, standin
        self.tokens, self.vendor, self.customers = seed["tokens"], seed["vendor"], seed["customers"]
        self.trace_dir: Path | None = None
        self.last_cpu: dict[str, float] = {}
        self.last_other = 0.0
        self.last_connections: list[int] = []
        self.host_header = f"{HOST}:{port}"
        self.rng = random.Random(1)

    def _post(self, path: str, token: str, body: bytes) -> bytes:
        return build_request(
            "POST",
            path,
            self.host_header,
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    def _bodies(self, variant_ids: list[Any]) -> list[bytes]:
        return [json.dumps({"variant_id": str(v)}).encode() for v in variant_ids]

    def _connections_later(self, delay: float = 1.0) -> threading.Timer:
        """Read how the load's connections split between the workers, ``delay`` seconds in."""
        timer = threading.Timer(
            delay,
            lambda: setattr(self, "last_connections", self.meter.server.connections_per_worker()),
        )
        self.last_connections = []
        timer.start()
        return timer

    def _load(self, factory: Any, *, total: int | None = None) -> LoadResult:
        before, busy_before = self.meter.snapshot(), self.meter.machine_busy()
        sampler = self._connections_later()
        result = run_load(
            HOST,
            self.port,
            factory,
            concurrency=self.concurrency,
            stagger=CONNECT_STAGGER_S,
            total=total,
            duration=None if total else self.duration,
        )
        sampler.cancel()
        sampler.join()
        after, busy_after = self.meter.snapshot(), self.meter.machine_busy()
        count = max(1, len(result.responses))
        self.last_cpu = {k: round(1000 * (after[k] - before[k]) / count, 2) for k in before}
        ours = sum(after.values()) - sum(before.values()) + result.client_cpu
        capacity = result.elapsed * (os.cpu_count() or 1)
        self.last_other = round(100 * (busy_after - busy_before - ours) / capacity, 1)
        return result

    def _summarize(self, config: str, rnd: int, scenario: str, result: LoadResult) -> Outcome:
        outcome = _summarize(config, rnd, scenario, result)
        outcome.cpu_ms_per_request = self.last_cpu
        outcome.other_cpu_pct = self.last_other
        outcome.connections = self.last_connections
        return outcome

    concurrency = 32

    def warm_up(self, seconds: float, webhooks: bool = True) -> None:
        """Open every worker's connections and fill its caches before anything is measured."""
        variants = new_variants(self.vendor, "warm-up", 50, SPREAD_STOCK)
        bodies = self._bodies([v.id for v in variants])
        tokens = self.tokens
        for path in ("/bench/insert/", "/api/orders/"):
            run_load(
                HOST,
                self.port,
                lambda n, path=path: (
                    self._post(path, tokens[n % len(tokens)], bodies[n % len(bodies)]),
                    None,
                ),
                concurrency=self.concurrency,
                stagger=CONNECT_STAGGER_S,
                duration=seconds / 2,
            )
        if not webhooks:
            return
        # The webhook path too (the workers import the stripe SDK on the first event).
        orders, events = self.paid_checkouts("warm-up", 2 * self.concurrency)
        requests = [request for request, _ in self._deliveries(orders, events)]
        run_load(
            HOST,
            self.port,
            lambda n: (requests[n], None),
            concurrency=self.concurrency,
            stagger=CONNECT_STAGGER_S,
            total=len(requests),
        )
        invoice_tasks()

    def baseline(self, config: str, rnd: int) -> Outcome:
        from bench.models import Hit

        before = Hit.objects.count()
        body = json.dumps({"variant_id": "00000000-0000-0000-0000-000000000000"}).encode()
        requests = [self._post("/bench/insert/", t, body) for t in self.tokens]
        result = self._load(lambda n: (requests[n % len(requests)], None))
        outcome = self._summarize(config, rnd, "baseline", result)
        written = Hit.objects.count() - before
        if written != outcome.ok:
            outcome.consistent = False
            outcome.notes.append(f"{outcome.ok} answered 201 but {written} rows were written")
        return outcome

    def spread(
        self, config: str, rnd: int, phases: dict[str, float] | None = None
    ) -> list[Outcome]:
        """Bookings without contention, one outcome per entry of ``phases`` (scenario name ->
        the Stripe stand-in's latency in seconds; default: ``spread`` at 0). With several, one
        load of that many times ``duration`` cycles through them every ``PHASE_S`` over the same
        connections, and each scenario's figures come from its own phases (answers counted when
        they arrive, CPU read at each switch): successive runs differ by 10-20% here (drift,
        and how the kernel spreads the 32 connections over the workers), interleaved phases do
        not. In payment link mode no booking may call Stripe; in eager mode each one opens a
        session."""
        from django.db.models import Count

        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import RepairOrder

        phases = phases or {"spread": 0.0}
        names = list(phases)
        variants = new_variants(
            self.vendor, f"{names[-1]} {config} r{rnd}", SPREAD_VARIANTS, SPREAD_STOCK
        )
        ids = [v.id for v in variants]
        bodies = self._bodies(ids)
        tokens, rng = self.tokens, self.rng

        def factory(n: int) -> tuple[bytes, int]:
            index = rng.randrange(len(bodies))
            return self._post("/api/orders/", tokens[n % len(tokens)], bodies[index]), index

        stripe_calls = len(self.standin.requests_log)
        if len(phases) == 1:
            self.standin.latency = phases[names[0]]
            try:
                result = self._load(factory)
            finally:
                self.standin.latency = 0.0
            outcomes = [self._summarize(config, rnd, names[0], result)]
            subsets = [result.responses]
        else:
            # Which latency opens the cycle alternates from round to round, so that neither
            # always runs second.
            shift = (rnd - 1) % len(names)
            names = names[shift:] + names[:shift]
            switcher = PhaseSwitcher(
                self.standin, self.meter, [phases[n] for n in names], len(phases) * self.duration
            )
            sampler = self._connections_later()
            with switcher:
                result = run_load(
                    HOST,
                    self.port,
                    factory,
                    concurrency=self.concurrency,
                    stagger=CONNECT_STAGGER_S,
                    duration=switcher.load_seconds,
                )
            sampler.join()
            parts, outside = switcher.split(result)
            outcomes = [
                switcher.summarize(config, rnd, name, part)
                for name, part in zip(names, parts, strict=True)
            ]
            for outcome in outcomes:
                outcome.connections = self.last_connections
            # The lead-in's and the drain's answers are checked with the first phase's.
            subsets = [part.result.responses for part in parts]
            subsets[0] = subsets[0] + outside
            outcomes[0].notes.append(
                f"+ {len(outside)} answers before the first phase or after the last, not timed"
            )
            order = [names.index(name) for name in phases]  # back to the caller's order
            outcomes, subsets = [outcomes[i] for i in order], [subsets[i] for i in order]
        calls = self.standin.requests_log[stripe_calls:]
        sold = dict(
            RepairOrder.objects.filter(variant_id__in=ids)
            .values_list("variant_id")
            .annotate(n=Count("id"))
        )
        stock = dict(ServiceVariant.objects.filter(id__in=ids).values_list("id", "stock"))
        ok = sum(1 for part in subsets for r in part if 200 <= r.status < 300)
        problems = []
        if min(stock.values()) < 0:
            problems.append("negative stock")
        if any(stock[v] != SPREAD_STOCK - sold.get(v, 0) for v in ids):
            problems.append("stock + orders != initial stock")
        if sum(sold.values()) != ok:
            problems.append(f"{ok} answered 2xx but {sum(sold.values())} orders exist")
        eager = os.environ.get("BENCH_LINK_MODE") == "eager"
        created = sum(1 for c in calls if c.method == "POST" and c.path == "/v1/checkout/sessions")
        if not eager and calls:
            problems.append(f"booking called Stripe {len(calls)} times in payment link mode")
        if eager:
            opened = RepairOrder.objects.filter(
                variant_id__in=ids, checkout_session_id__isnull=False
            ).count()
            if opened != ok or created < ok:
                problems.append(f"{ok} eager bookings but {opened} sessions stored")
        for outcome, responses in zip(outcomes, subsets, strict=True):
            outcome.oversold = sum(max(0, sold.get(v, 0) - SPREAD_STOCK) for v in ids)
            outcome.refused_while_available = sum(
                1 for r in responses if r.status == 409 and stock[ids[r.tag]] > 0
            )
            outcome.stripe_calls = len(calls)
            outcome.consistent = not problems
            outcome.notes.append(
                f"Stripe stand-in at {', '.join(f'{1000 * v:.0f}' for v in phases.values())} "
                f"ms: {len(calls)} requests during the run ({created} session creations for "
                f"{ok} bookings)"
            )
            outcome.notes += problems
        return outcomes

    def paid_checkouts(self, label: str, count: int) -> tuple[list[Any], list[dict[str, Any]]]:
        return paid_checkouts(
            self.standin, self.vendor, self.customers, label, count, f"http://{self.host_header}/"
        )

    def _deliveries(
        self, orders: list[Any], events: list[dict[str, Any]]
    ) -> list[tuple[bytes, tuple[int, int]]]:
        """Every event ``WEBHOOK_COPIES`` times, as Stripe would POST it (same body, signed
        now), the copies of ``WEBHOOK_BLOCK`` orders' events shuffled together: with 32
        connections, copies of one event (and the two events of one order) are in flight at
        once. Tags: (event index, copy)."""
        by_order: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_order.setdefault(event["data"]["object"]["metadata"]["order_id"], []).append(index)
        payloads = [json.dumps(event, indent=2).encode() for event in events]
        deliveries = []
        for start in range(0, len(orders), WEBHOOK_BLOCK):
            block = [
                (index, copy)
                for order in orders[start : start + WEBHOOK_BLOCK]
                for index in by_order[str(order.id)]
                for copy in range(WEBHOOK_COPIES)
            ]
            self.rng.shuffle(block)
            for index, copy in block:
                headers = {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Stripe-Signature": self.standin.sign(payloads[index]),
                }
                request = build_request(
                    "POST", "/api/webhooks/payment/", self.host_header, payloads[index], headers
                )
                deliveries.append((request, (index, copy)))
        return deliveries

    def webhook(self, config: str, rnd: int, count: int) -> Outcome:
        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import OrderStatusChange, RepairOrder
        from marketlink.payments.models import PaymentEvent

        started = time.monotonic()
        orders, events = self.paid_checkouts(f"webhook {config} r{rnd}", count)
        prepared = time.monotonic() - started
        deliveries = self._deliveries(orders, events)
        result = self._load(lambda n: deliveries[n], total=len(deliveries))
        outcome = self._summarize(config, rnd, "webhook", result)
        ids = [order.id for order in orders]
        problems = []
        # Every delivery answered 2xx, the duplicates included.
        refused = len(result.responses) - outcome.ok
        if refused or len(result.responses) != len(deliveries):
            problems.append(f"{refused} of {len(deliveries)} deliveries not answered 2xx")
        # Every order paid, exactly once: one history row each, pending -> paid.
        statuses = Counter(RepairOrder.objects.filter(id__in=ids).values_list("status", flat=True))
        history = Counter(
            OrderStatusChange.objects.filter(order_id__in=ids).values_list(
                "order_id", "from_status", "to_status"
            )
        )
        paid_once = sum(1 for i in ids if history.get((i, "pending", "paid")) == 1)
        if statuses != Counter({"paid": len(ids)}):
            problems.append(f"order statuses {dict(statuses)}, expected {len(ids)} paid")
        if paid_once != len(ids) or sum(history.values()) != len(ids):
            problems.append(
                f"{paid_once} of {len(ids)} orders with one pending -> paid change; "
                f"{sum(history.values())} changes in all"
            )
        # Every event stored once, processed once, tied to its order.
        event_order = {e["id"]: e["data"]["object"]["metadata"]["order_id"] for e in events}
        rows = list(
            PaymentEvent.objects.filter(event_id__in=event_order).values_list(
                "event_id", "status", "attempts", "needs_attention", "order_id"
            )
        )
        once = sum(
            1
            for event_id, status, attempts, attention, order_id in rows
            if status == "processed"
            and attempts == 1
            and not attention
            and str(order_id) == event_order[event_id]
        )
        if len(rows) != len(events) or once != len(events):
            problems.append(
                f"{len(events)} events: {len(rows)} stored, {once} processed once for their order"
            )
        # Paying holds the unit the booking took: stock = initial - orders, per variant.
        per_variant = Counter(order.variant_id for order in orders)
        stock = dict(ServiceVariant.objects.filter(id__in=per_variant).values_list("id", "stock"))
        if any(stock[v] != SPREAD_STOCK - n for v, n in per_variant.items()):
            problems.append("stock + orders != initial stock")
        # One invoice task per order (no consumer runs: they wait in Redis, then are dropped).
        tasks = invoice_tasks()
        invoices = Counter(args[0] for name, args in tasks if name.endswith("send_invoice"))
        if invoices != Counter(str(i) for i in ids) or len(tasks) != len(ids):
            problems.append(
                f"{len(tasks)} tasks queued ({sum(invoices.values())} invoices) "
                f"for {len(ids)} orders"
            )
        outcome.consistent = not problems
        outcome.notes += problems
        outcome.notes.append(
            f"{len(ids)} orders paid at the stand-in in {prepared:.1f} s; {len(events)} events "
            f"x {WEBHOOK_COPIES} = {len(deliveries)} deliveries, "
            f"{outcome.ok_per_s / WEBHOOK_COPIES:.0f} distinct events/s; "
            f"{_overlap(result, events)}; invoice tasks queued: {sum(invoices.values())}"
        )
        return outcome

    def hot(self, config: str, rnd: int, stock: int) -> Outcome:
        from django.db.models import Max

        from marketlink.orders.models import RepairOrder

        (variant,) = new_variants(self.vendor, f"hot {config} r{rnd}", 1, stock)
        body = self._bodies([variant.id])[0]
        requests = [self._post("/api/orders/", t, body) for t in self.tokens]
        result = self._load(lambda n: (requests[n % len(requests)], None), total=2 * stock)
        outcome = self._summarize(config, rnd, "hot", result)
        variant.refresh_from_db()
        orders = RepairOrder.objects.filter(variant=variant)
        sold = orders.count()
        last = orders.aggregate(last=Max("created_at"))["last"]
        outcome.oversold = max(0, sold - stock)
        refusals = [r for r in result.responses if r.status == 409]
        if variant.stock > 0:
            # Stock never ran out, so every refusal refused a unit that was there.
            outcome.refused_while_available = len(refusals)
        elif last is not None:
            # The stock reached 0 when the last order committed, after its created_at: a 409
            # that reached the client before that instant was decided while a unit was left.
            sold_out_at = last.timestamp()
            outcome.refused_while_available = sum(
                1 for r in refusals if r.received + result.wall_offset < sold_out_at
            )
            # Sent before that instant but answered after it: decided around the sell-out, not
            # counted (the server may have seen the last unit taken). Reported for scale.
            around = sum(
                1
                for r in refusals
                if r.sent + result.wall_offset < sold_out_at <= r.received + result.wall_offset
            )
            outcome.notes.append(f"409s in flight across the sell-out (not counted): {around}")
        problems = []
        if variant.stock < 0:
            problems.append("negative stock")
        if variant.stock != stock - sold:
            problems.append(f"stock {variant.stock} + {sold} orders != {stock}")
        if sold != outcome.ok:
            problems.append(f"{outcome.ok} answered 2xx but {sold} orders exist")
        outcome.consistent = not problems
        outcome.notes += problems
        outcome.notes.append(f"stock {stock}, sold {sold}, left {variant.stock}")
        if self.trace_dir is not None:
            outcome.notes.append(_lock_summary(tracing.read(self.trace_dir, variant.id)))
        return outcome


def invoice_tasks() -> list[tuple[str, tuple[Any, ...]]]:
    """The tasks waiting in the bench's Huey queue (``(name, args)``), which are then dropped.
    The bench runs no Huey consumer: the invoices paid orders enqueue just accumulate."""
    from huey.contrib.djhuey import HUEY

    import marketlink.payments.tasks  # noqa: F401 (registers the tasks to read them back)

    tasks = [(task.name, tuple(task.args)) for task in HUEY.pending()]
    HUEY.flush()
    return tasks


def _overlap(result: LoadResult, events: list[dict[str, Any]]) -> str:
    """How often the copies of one event, and the two events of one order, were in flight at
    the same time (one sent before another was answered)."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for r in result.responses:
        spans.setdefault(r.tag[0], []).append((r.sent, r.received))

    def together(intervals: list[tuple[float, float]]) -> bool:
        intervals = sorted(intervals)
        return any(b[0] < a[1] for a, b in itertools.pairwise(intervals))

    copies = sum(1 for s in spans.values() if together(s))
    orders: dict[str, list[tuple[float, float]]] = {}
    for index, event in enumerate(events):
        order = event["data"]["object"]["metadata"]["order_id"]
        first = min(spans.get(index, [(0.0, 0.0)]))
        orders.setdefault(order, []).append(first)
    pairs = sum(1 for s in orders.values() if len(s) > 1 and together(s))
    return (
        f"copies of one event in flight together: {copies / max(1, len(spans)):.0%} of events; "
        f"both events of an order (first copies) together: {pairs / max(1, len(orders)):.0%}"
    )


def _lock_summary(rows: list[tuple[float, float, float, float]]) -> str:
    """Wait, hold and hand-off of the hot variant's lock, from ``--trace-lock``."""
    if len(rows) < 2:
        return "lock trace: too few bookings"
    waits = sorted(1000 * (got - asked) for asked, got, _, _ in rows)
    holds = sorted(1000 * (done - got) for _, got, done, _ in rows)
    releases = [1000 * (released - done) for _, _, done, released in rows]
    handoffs = [1000 * (b[1] - a[2]) for a, b in itertools.pairwise(rows)]
    cycle = 1000 * (rows[-1][1] - rows[0][1]) / (len(rows) - 1)
    return (
        f"lock trace, {len(rows)} bookings: wait p50 {percentile(waits, 0.5):.1f} / "
        f"p99 {percentile(waits, 0.99):.1f} ms; held (transaction) mean "
        f"{statistics.fmean(holds):.2f} / p99 {percentile(holds, 0.99):.2f} ms; release "
        f"{statistics.fmean(releases):.2f} ms; one booking every {cycle:.2f} ms, of which "
        f"{statistics.median(handoffs):.2f} ms (median) between one holder's commit and the "
        "next holder's start"
    )


# --------------------------------------------------------------------------------------------
# Reporting

COLUMNS = [
    ("config", 9),
    ("rnd", 3),
    ("scenario", 12),
    ("requests", 8),
    ("ok/s", 7),
    ("ratio", 5),
    ("p50 ms", 6),
    ("p95 ms", 6),
    ("p99 ms", 6),
    ("p99 ok", 6),
    ("2xx", 6),
    ("409", 5),
    ("5xx", 4),
    ("oversold", 8),
    ("refused*", 8),
    ("cpu ms/req app+pg+redis", 23),
    ("client", 6),
    ("other", 5),
    ("conns/worker", 12),
]


def _row(o: Outcome) -> list[str]:
    two = sum(v for k, v in o.statuses.items() if k.startswith("2"))
    return [
        o.config,
        str(o.round),
        o.scenario,
        str(o.requests),
        f"{o.ok_per_s:.0f}",
        "-" if o.ratio is None else f"{o.ratio:.0%}",
        f"{o.p50_ms:.1f}",
        f"{o.p95_ms:.1f}",
        f"{o.p99_ms:.1f}",
        f"{o.p99_ok_ms:.1f}",
        str(two),
        str(o.statuses.get("409", 0)),
        str(o.server_errors),
        str(o.oversold),
        str(o.refused_while_available),
        "+".join(f"{v:.2f}" for v in o.cpu_ms_per_request.values()),
        f"{o.client_cpu_pct:.0f}%",
        f"{o.other_cpu_pct:.0f}%",
        "/".join(str(n) for n in o.connections) or "-",
    ]


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| " + " | ".join(name.rjust(width) for name, width in COLUMNS) + " |",
        "|" + "|".join("-" * (width + 2) for _, width in COLUMNS) + "|",
    ]
    for outcome in outcomes:
        cells = [c.rjust(w) for c, (_, w) in zip(_row(outcome), COLUMNS, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(outcomes: list[Outcome], memory: dict[str, list[list[float]]]) -> list[str]:
    """The issue's targets, judged on the medians over rounds of each configuration."""
    lines = []
    for config in dict.fromkeys(o.config for o in outcomes):
        mine = [o for o in outcomes if o.config == config]

        def med(scenario: str, attr: str, mine: list[Outcome] = mine) -> float:
            values = [getattr(o, attr) for o in mine if o.scenario == scenario]
            return statistics.median(values) if values else 0.0

        def cpu(scenario: str, mine: list[Outcome] = mine) -> float:
            values = [sum(o.cpu_ms_per_request.values()) for o in mine if o.scenario == scenario]
            return statistics.median(values) if values else 0.0

        def slow_ratio(mine: list[Outcome] = mine) -> float:
            """Median over rounds of (spread at 300 ms) / (spread at 0 ms) of the same round."""
            rates = {(o.round, o.scenario): o.ok_per_s for o in mine}
            values = [
                rates[r, "spread 300ms"] / rates[r, "spread"]
                for r, s in rates
                if s == "spread" and rates.get((r, "spread 300ms")) and rates[r, s]
            ]
            return statistics.median(values) if values else 0.0

        lines.append(f"{config}: median over {len({o.round for o in mine})} round(s)")
        if config.endswith("eager"):
            calls = [(o.stripe_calls or 0) / max(1, o.ok) for o in mine if o.scenario != "baseline"]
            lines.append(
                "  eager payment mode, for contrast (no target): bookings "
                f"{med('spread', 'ok_per_s'):.0f}/s with Stripe at 0 ms, "
                f"{med('spread 300ms', 'ok_per_s'):.0f}/s at 300 ms ({slow_ratio():.0%}); "
                f"{max(calls, default=0):.2f} Stripe requests per booking"
            )
            lines.append(
                f"  [{'met' if all(o.consistent for o in mine) else 'MISSED'}] database "
                "consistent, a stored session for every booking"
            )
            continue
        spread_ratio, hot_ratio = med("spread", "ratio"), med("hot", "ratio")
        webhook_ratio = med("webhook", "ratio")
        p99 = max(med("spread", "p99_ms"), med("hot", "p99_ms"))
        if cpu("spread"):
            lines.append(
                "  server CPU per request (app+PostgreSQL+Redis): "
                f"baseline {cpu('baseline'):.2f} ms, booking {cpu('spread'):.2f} ms = "
                f"{cpu('baseline') / cpu('spread'):.0%}, webhook delivery "
                f"{cpu('webhook'):.2f} ms = {cpu('baseline') / max(cpu('webhook'), 1e-9):.0%} "
                "(the rate ratio a CPU-bound machine would give, unmoved by other load)"
            )
        webhooks = [o for o in mine if o.scenario == "webhook"]
        slow = [o for o in mine if o.scenario == "spread 300ms"]
        checks = [
            (
                f"webhook deliveries >= {TARGET_WEBHOOK_RATIO:.0%} of baseline: "
                f"{webhook_ratio:.0%} ({med('webhook', 'ok_per_s'):.0f} deliveries/s, "
                f"{med('webhook', 'ok_per_s') / WEBHOOK_COPIES:.0f} distinct events/s)",
                webhook_ratio >= TARGET_WEBHOOK_RATIO,
            ),
            (
                "webhooks exactly once: every order paid once, every event processed once, "
                f"every delivery 2xx ({sum(o.ok for o in webhooks)}/"
                f"{sum(o.requests for o in webhooks)})",
                bool(webhooks) and all(o.consistent and o.ok == o.requests for o in webhooks),
            ),
            (
                f"bookings with Stripe at {1000 * SLOW_STRIPE_S:.0f} ms within "
                f"{TARGET_SLOW_STRIPE:.0%} of 0 ms: {slow_ratio():.0%} "
                f"({med('spread 300ms', 'ok_per_s'):.0f} vs {med('spread', 'ok_per_s'):.0f}/s), "
                f"{sum(o.stripe_calls or 0 for o in slow)} Stripe requests while booking",
                abs(slow_ratio() - 1) <= TARGET_SLOW_STRIPE
                and not any(o.stripe_calls for o in slow),
            ),
            (f"spread bookings >= 30% of baseline: {spread_ratio:.0%}", spread_ratio >= 0.30),
            (f"hot-variant bookings >= 20% of baseline: {hot_ratio:.0%}", hot_ratio >= 0.20),
            (
                f"p99 <= {TARGET_P99_MS:.0f} ms at {Bench.concurrency} clients: spread "
                f"{med('spread', 'p99_ms'):.0f} ms, hot {med('hot', 'p99_ms'):.0f} ms",
                p99 <= TARGET_P99_MS,
            ),
            (
                f"0 oversold: {sum(o.oversold for o in mine)}",
                not any(o.oversold for o in mine),
            ),
            (
                f"0 server errors: {sum(o.server_errors for o in mine)}"
                f" (+{sum(o.client_errors for o in mine)} failed connections)",
                not any(o.server_errors or o.client_errors for o in mine),
            ),
            (
                f"0 refused while stock remained: {sum(o.refused_while_available for o in mine)}",
                not any(o.refused_while_available for o in mine),
            ),
            ("database consistent after every scenario", all(o.consistent for o in mine)),
        ]
        rounds = memory.get(config, [])
        if rounds:
            first, last = max(rounds[0]), max(rounds[-1])
            checks.append(
                (
                    "worker RSS MiB after each round: "
                    + " -> ".join("/".join(f"{m:.1f}" for m in r) for r in rounds),
                    len(rounds) < 2 or last - first < 5,
                )
            )
        lines += [f"  [{'met' if good else 'MISSED'}] {text}" for text, good in checks]
    return lines


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one configuration, one short round")
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 3; quick 1)")
    parser.add_argument(
        "--configs",
        help="gunicorn gthread WORKERSxTHREADS, comma-separated (default 2x4,4x2,2x8; quick 2x4)",
    )
    parser.add_argument("--duration", type=float, help="seconds per scenario (default 5; quick 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
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
        "--no-eager",
        dest="eager",
        action="store_false",
        help="skip the eager payment mode contrast (booking that calls Stripe)",
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
    rounds = args.rounds or (1 if args.quick else 3)
    duration = args.duration or (3.0 if args.quick else 5.0)
    configs = [
        tuple(int(x) for x in c.split("x"))
        for c in (args.configs or ("2x4" if args.quick else "2x4,4x2,2x8")).split(",")
    ]
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
        f"{rounds} round(s), configs {', '.join(f'{w}x{t}' for w, t in configs)}, "
        f"LOCK_BACKEND {args.lock_backend}, GIL switch interval "
        f"{args.switch_interval or sys.getswitchinterval()} s; "
        f"logs in {logdir}",
        flush=True,
    )

    def record(round_outcomes: list[Outcome], base: Outcome) -> None:
        for outcome in round_outcomes:
            outcome.ratio = round(outcome.ok_per_s / base.ok_per_s, 3) if base.ok_per_s else 0
            outcomes.append(outcome)
            print(table([outcome]).splitlines()[-1], flush=True)
            for note in outcome.notes:
                print(f"      {note}", flush=True)

    def report_tracebacks(server: Gunicorn) -> None:
        errors = server.log.read_text(errors="replace").count("Traceback")
        if errors:
            print(f"      {errors} tracebacks in {server.log}", flush=True)

    for workers, threads in configs:
        config = f"{workers}x{threads}"
        from django.db import connections

        connections.close_all()
        reset_stores(args.database_url, args.redis_url)
        seed = migrate_and_seed()
        trace_dir = None
        if args.trace_lock:
            trace_dir = logdir / f"lock-trace-{config}"
            trace_dir.mkdir()
            os.environ["BENCH_TRACE_LOCK"] = str(trace_dir)
        server = Gunicorn(workers, threads, _free_port(), logdir / f"gunicorn-{config}.log")
        try:
            server.start()
            bench = Bench(server.port, seed, duration, CpuMeter(server), standin)
            bench.trace_dir = trace_dir
            bench.warm_up(2.0 if args.quick else 3.0)
            memory[config] = []
            hot_stock: int | None = None
            webhook_orders: int | None = None
            for rnd in range(1, rounds + 1):
                base = bench.baseline(config, rnd)
                spread, slow = bench.spread(
                    config, rnd, {"spread": 0.0, "spread 300ms": SLOW_STRIPE_S}
                )
                # Size the storm so the sale lasts about `duration` seconds at the rate seen.
                hot_stock = hot_stock or max(100, int(spread.ok_per_s * duration / 2))
                hot = bench.hot(config, rnd, hot_stock)
                hot_stock = max(100, int(hot.ok_per_s * duration))
                # The same for the webhooks: 2 events x WEBHOOK_COPIES deliveries per order,
                # first guessed from the booking rate.
                per_order = 2 * WEBHOOK_COPIES
                webhook_orders = webhook_orders or max(
                    50, int(spread.ok_per_s * duration / per_order)
                )
                webhook = bench.webhook(config, rnd, webhook_orders)
                webhook_orders = max(50, int(webhook.ok_per_s * duration / per_order))
                record([base, spread, slow, hot, webhook], base)
                memory[config].append(server.worker_rss_mib())
                print(f"      worker RSS after round {rnd}: {memory[config][-1]} MiB", flush=True)
            report_tracebacks(server)
        finally:
            server.stop()
        if args.eager and config == f"{configs[0][0]}x{configs[0][1]}":
            # The seed's payment mode, for contrast: the Checkout Session is created at Stripe
            # right after each booking commits, inside the request.
            os.environ["BENCH_LINK_MODE"] = "eager"
            eager = Gunicorn(
                workers, threads, _free_port(), logdir / f"gunicorn-{config}-eager.log"
            )
            try:
                eager.start()
                bench = Bench(eager.port, seed, duration, CpuMeter(eager), standin)
                bench.warm_up(1.0, webhooks=False)
                label = f"{config} eager"
                # Separate loads: an eager booking waits on Stripe, so a slow phase would spill
                # its backlog into the next one. The ratio is to the link-mode server's last
                # baseline.
                fast = bench.spread(label, 1, {"spread": 0.0})
                slow = bench.spread(label, 1, {"spread 300ms": SLOW_STRIPE_S})
                record([*fast, *slow], base)
                report_tracebacks(eager)
            finally:
                eager.stop()
                del os.environ["BENCH_LINK_MODE"]

    print()
    print(
        f"{args.clients} concurrent clients, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.time() - started:.0f} s"
    )
    print(table(outcomes))
    print(
        "ok/s: successful requests per second (hot: until the last booking; webhook: "
        "deliveries, duplicates included); ratio: ok/s over the same round's baseline;\n"
        "spread 300ms: spread with the Stripe stand-in answering after 300 ms; eager: the "
        "Checkout Session created at booking (PAYMENT_LINK_MODE eager; ratio to the last "
        "baseline);\n"
        "p99 ok: p99 of 2xx answers only; refused*: 409 while stock remained; cpu ms/req: CPU "
        "per request of the gunicorn workers, PostgreSQL and Redis;\nclient: the runner's CPU "
        "(load client, and the Stripe stand-in when called), % of one core; other: the machine's "
        "CPU spent elsewhere\n(other processes, unattributed kernel time), % of all cores; "
        "conns/worker: the client's connections each worker held 1 s in (the workers race to "
        "accept them)"
    )
    print()
    print("\n".join(verdict(outcomes, memory)))
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    path.write_text(
        json.dumps(
            {"argv": sys.argv, "outcomes": [asdict(o) for o in outcomes], "memory": memory},
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
        print("\ninterrupted; gunicorn stopped", file=sys.stderr)
        sys.exit(130)
