#!/usr/bin/env python
"""marketlink's load benchmark: the example site under gunicorn on PostgreSQL + Redis.

    python bench/run.py            # full run: 4x2 (headline) and 2x4, 3 rounds each (~4 minutes)
    python bench/run.py --quick    # 4x2, one short round (~1 minute)

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
from dataclasses import asdict, dataclass
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

from bench import tracing, webhooks  # noqa: E402
from bench.loadclient import LoadResult, build_request, percentile, run_load  # noqa: E402
from bench.report import LEGEND, Outcome, table, verdict  # noqa: E402

# A database and Redis db of the bench's own: the test suites others run use other names.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ml_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
HOST = "127.0.0.1"
CUSTOMERS = 200  # the hot storm's buyers: each of its requests comes from another customer
SPREAD_VARIANTS = 50
SPREAD_STOCK = 1_000_000  # never runs out: every 409 in this scenario is a wrong refusal
HOT_STOCK = 50  # units of the hot variant, sold to CUSTOMERS buyers
# Seconds between the client's connection starts: a burst of 32 connects tends to be accepted by
# one gunicorn worker (32/0), which then serves everything under one GIL at half the rate.
CONNECT_STAGGER_S = 0.002
# The Stripe stand-in the site talks to (STRIPE_API_BASE) and the secrets both sides share.
STANDIN_API_KEY = "sk_test_marketlink_bench"
STANDIN_WEBHOOK_SECRET = "whsec_marketlink_bench"
SLOW_STRIPE_S = 0.3  # --slow-stripe: the stand-in's latency in the slow phases
WEBHOOK_COPIES = 2  # every event is delivered twice: half the pairs together, half in turn
WEBHOOK_ORDERS = 100
WEBHOOK_VARIANTS = 50
# The event each webhook scenario delivers, by scenario name.
WEBHOOK_KINDS = {
    "webhook pi": "payment_intent.succeeded",
    "webhook cs": "checkout.session.completed",
}
INVOICE_WAIT_S = 60.0  # how long the Huey consumer may take to send a scenario's invoices


# --------------------------------------------------------------------------------------------
# Processes


def _parent_death_signal() -> None:
    """In the child: die with the runner even if the runner is killed hard."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> Any:
    """A child in its own session (a signal to the runner's group does not reach it first),
    logging to ``log``, that dies with the runner."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=_parent_death_signal,
            env=env,
        )


def _stop(proc: Any, sig: int) -> None:
    """Ask ``proc`` to stop with ``sig``; kill its group after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class HueyConsumer:
    """``manage.py run_huey`` of the example project on the bench settings (``RedisHuey`` on the
    bench Redis db), running beside gunicorn, so the invoices paid orders enqueue are sent while
    the load runs, as in production. Emails go to Django's locmem backend: rendered and
    "sent", delivered nowhere."""

    def __init__(self, workers: int, log: Path) -> None:
        self.workers, self.log = workers, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            str(ROOT / "example_project" / "manage.py"),
            "run_huey",
            f"--workers={self.workers}",
            "--worker-type=thread",
            "--no-periodic",
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
        self.proc = _spawn(command, self.log, env)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"run_huey exited ({self.proc.returncode}); see {self.log}")

    def pids(self) -> list[int]:
        return [] if self.proc is None else [self.proc.pid]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGINT)  # Huey: finish the running tasks, then exit


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
        self.proc = _spawn(command, self.log)
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
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(path).read_text().splitlines()[1:]
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
        _stop(proc, signal.SIGINT)  # gunicorn: quick shutdown


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _redis_pids() -> list[int]:
    """The redis-server serving the bench's port. Other engineers' test runs may start and stop
    redis-servers of their own: counted too, one exiting between two readings makes a scenario's
    Redis CPU negative (seen once: -0.10 ms per request)."""
    port = urlsplit(os.environ["REDIS_URL"]).port or 6379
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "redis-server":
                    continue
                if f":{port}".encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds spent by the gunicorn workers, PostgreSQL (this database's backends and the
    shared writer processes), Redis and the Huey consumer, read from /proc around a scenario."""

    def __init__(self, server: Gunicorn, consumer: HueyConsumer | None = None) -> None:
        self.server, self.consumer = server, consumer

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
            "redis": sum(_cpu_seconds(p) for p in _redis_pids()),
            "huey": sum(_cpu_seconds(p) for p in self.consumer.pids()) if self.consumer else 0.0,
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
    from marketlink.payments.checkout import checkout_open

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
        rate_per_s=round(len(ok) / ok_span, 1) if ok_span > 0 else 0.0,
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
        outcome.rate_per_s = outcome.ok_per_s
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

    def _load(
        self, factory: Any, *, total: int | None = None, rendezvous: Any = None
    ) -> LoadResult:
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
            rendezvous=rendezvous,
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

    def warm_up(self, seconds: float, with_webhooks: bool = True) -> None:
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
        if not with_webhooks:
            return
        # The webhook path too (the workers import the stripe SDK on the first event), and the
        # consumer's invoices.
        orders, events = self.paid_checkouts("warm-up", 2 * self.concurrency)
        slots = webhooks.deliveries(events, self.standin.sign, self.host_header, self.rng)
        run_load(
            HOST,
            self.port,
            lambda n: slots[n],
            concurrency=self.concurrency,
            stagger=CONNECT_STAGGER_S,
            total=len(slots),
            rendezvous=webhooks.rendezvous,
        )
        webhooks.wait_for_invoices([order.id for order in orders], INVOICE_WAIT_S)

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

    def webhook(self, config: str, rnd: int, scenario: str, count: int) -> Outcome:
        """``count`` orders paid at the stand-in, then the ``WEBHOOK_KINDS[scenario]`` event of
        each delivered twice (``bench/webhooks.py``); checked once the Huey consumer has sent
        every invoice."""
        started = time.monotonic()
        orders, events = self.paid_checkouts(f"{scenario} {config} r{rnd}", count)
        events = [event for event in events if event["type"] == WEBHOOK_KINDS[scenario]]
        prepared = time.monotonic() - started
        slots = webhooks.deliveries(events, self.standin.sign, self.host_header, self.rng)
        result = self._load(lambda n: slots[n], total=len(slots), rendezvous=webhooks.rendezvous)
        outcome = self._summarize(config, rnd, scenario, result)
        drained = webhooks.wait_for_invoices([order.id for order in orders], INVOICE_WAIT_S)
        problems = webhooks.payment_problems(orders, events, SPREAD_STOCK)
        expected = WEBHOOK_COPIES * len(events)
        if outcome.ok != expected or len(result.responses) != expected:
            problems.append(f"{outcome.ok} of {expected} deliveries answered 2xx")
        if len(events) != len(orders):
            problems.append(f"{len(events)} {WEBHOOK_KINDS[scenario]} events for {count} orders")
        outcome.paid_once = not problems
        sent, unsent = webhooks.invoice_problems(orders)
        outcome.invoices = (sent, len(orders))
        outcome.consistent = not problems and not unsent
        outcome.notes += problems + unsent
        concurrent, sequential = webhooks.overlap(result)
        outcome.notes.append(
            f"{len(orders)} orders paid at the stand-in in {prepared:.1f} s; {len(events)} "
            f"{WEBHOOK_KINDS[scenario]} x {WEBHOOK_COPIES} = {expected} deliveries; copies in "
            f"flight together: {concurrent:.0%} of the concurrent pairs; second copy after the "
            f"first's answer: {sequential:.0%} of the sequential pairs; every invoice sent "
            f"{drained:.1f} s after the last answer"
        )
        return outcome

    def hot(self, config: str, rnd: int, storms: int) -> Outcome:
        """``storms`` rushes back to back in one load, each of ``CUSTOMERS`` buyers (one request
        each) for a fresh variant of ``HOT_STOCK`` units: the variant lock serialises each rush
        and three buyers in four find it sold out. The rate is every answer per second: a
        refusal is an answer a buyer waits for too."""
        from django.db.models import Count, Max

        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import RepairOrder

        variants = new_variants(self.vendor, f"hot {config} r{rnd}", storms, HOT_STOCK)
        ids = [variant.id for variant in variants]
        requests = [
            [self._post("/api/orders/", token, body) for token in self.tokens]
            for body in self._bodies(ids)
        ]
        buyers = len(self.tokens)
        result = self._load(
            lambda n: (requests[n // buyers][n % buyers], n // buyers), total=storms * buyers
        )
        outcome = self._summarize(config, rnd, "hot", result)
        outcome.rate_per_s = outcome.req_per_s
        orders = RepairOrder.objects.filter(variant_id__in=ids).values_list("variant_id")
        sold = dict(orders.annotate(n=Count("id")))
        last = dict(orders.annotate(last=Max("created_at")))
        stock = dict(ServiceVariant.objects.filter(id__in=ids).values_list("id", "stock"))
        outcome.oversold = sum(max(0, sold.get(v, 0) - HOT_STOCK) for v in ids)
        # A variant's stock reached 0 when its last order committed, after that order's
        # created_at: a 409 that reached the client before that instant was decided while a unit
        # was left. One sent before it but answered after it was decided around the sell-out
        # (the server may have seen the last unit taken): not counted, reported for scale.
        around = 0
        for response in result.responses:
            if response.status != 409:
                continue
            variant = ids[response.tag]
            if stock[variant] > 0 or variant not in last:
                outcome.refused_while_available += 1
                continue
            sold_out_at = last[variant].timestamp() - result.wall_offset
            if response.received < sold_out_at:
                outcome.refused_while_available += 1
            elif response.sent < sold_out_at:
                around += 1
        problems = []
        if min(stock.values()) < 0:
            problems.append("negative stock")
        if any(stock[v] != HOT_STOCK - sold.get(v, 0) for v in ids):
            problems.append("stock + orders != initial stock")
        if sum(sold.values()) != outcome.ok:
            problems.append(f"{outcome.ok} answered 2xx but {sum(sold.values())} orders exist")
        outcome.consistent = not problems
        outcome.notes += problems
        outcome.notes.append(
            f"{storms} storms of {buyers} buyers for {HOT_STOCK} units: sold "
            f"{sum(sold.values())}, left {sum(stock.values())}; 409s in flight across a "
            f"sell-out (not counted): {around}"
        )
        if self.trace_dir is not None:
            outcome.notes.append(_lock_summary(tracing.read(self.trace_dir, ids[-1])))
        return outcome


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one configuration, one short round")
    parser.add_argument("--rounds", type=int, help="rounds per configuration (default 3; quick 1)")
    parser.add_argument(
        "--configs",
        help="gunicorn gthread WORKERSxTHREADS, comma-separated, the headline first "
        "(default 4x2,2x4; quick 4x2)",
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
    configs = [
        tuple(int(x) for x in c.split("x"))
        for c in (args.configs or ("4x2" if args.quick else "4x2,2x4")).split(",")
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
                # Enough storms for the rush to last about `duration` at the rate seen.
                rate = (hot or booked[0]).rate_per_s
                hot = bench.hot(config, rnd, max(2, round(rate * duration / CUSTOMERS)))
                hooks = [
                    bench.webhook(config, rnd, scenario, args.webhook_orders)
                    for scenario in WEBHOOK_KINDS
                ]
                record([base, *booked, hot, *hooks], base)
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
