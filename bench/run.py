#!/usr/bin/env python
"""marketlink's load benchmark: the example site under gunicorn on PostgreSQL + Redis.

    python bench/run.py            # full run: 3 gunicorn configurations x 3 rounds (~3 minutes)
    python bench/run.py --quick    # one configuration, one short round (~20 seconds)

For each gunicorn configuration it (re)creates a dedicated database, migrates and seeds it through
the ORM and marketlink's services, starts gunicorn, and then, each round, runs three scenarios with
the same closed-loop client (``bench/loadclient.py``) at 32 concurrent keep-alive connections:

- ``baseline``: ``POST /bench/insert/``, a bare Django view doing one INSERT (``bench/views.py``);
- ``spread``: ``POST /api/orders/`` over many variants with ample stock, 50 customers' tokens;
- ``hot``: the same against one variant whose stock is about half the requests sent.

After each scenario it checks the database (oversold units, stock consistency, refusals while stock
remained, 2xx count = orders written) and after each round it reads every worker's RSS. See
``bench/README.md`` for the method and the figures. Results also go to ``bench/results/*.json``.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
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

    def snapshot(self) -> dict[str, float]:
        return {
            "app": sum(_cpu_seconds(p) for p in self.server.worker_pids()),
            "postgres": sum(_cpu_seconds(p) for p in self._postgres_pids()),
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
    tokens = []
    for number in range(CUSTOMERS):
        email = f"customer{number}@bench.example"
        user = user_model._default_manager.create_user(email, None)
        Account.objects.create(user=user, role=Role.CUSTOMER, email=email)
        tokens.append(tokens_issue(user=user)["access"])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"vendor": vendor, "tokens": tokens}


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


class Bench:
    def __init__(
        self, port: int, tokens: list[str], vendor: Any, duration: float, meter: CpuMeter
    ) -> None:
        self.port, self.tokens, self.vendor, self.duration = port, tokens, vendor, duration
        self.meter = meter
        self.trace_dir: Path | None = None
        self.last_cpu: dict[str, float] = {}
        self.last_other = 0.0
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

    def _load(self, factory: Any, *, total: int | None = None) -> LoadResult:
        before, busy_before = self.meter.snapshot(), self.meter.machine_busy()
        result = run_load(
            HOST,
            self.port,
            factory,
            concurrency=self.concurrency,
            total=total,
            duration=None if total else self.duration,
        )
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
        return outcome

    concurrency = 32

    def warm_up(self, seconds: float) -> None:
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
                duration=seconds / 2,
            )

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

    def spread(self, config: str, rnd: int) -> Outcome:
        from django.db.models import Count

        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import RepairOrder

        variants = new_variants(
            self.vendor, f"spread {config} r{rnd}", SPREAD_VARIANTS, SPREAD_STOCK
        )
        ids = [v.id for v in variants]
        bodies = self._bodies(ids)
        tokens, rng = self.tokens, self.rng

        def factory(n: int) -> tuple[bytes, int]:
            index = rng.randrange(len(bodies))
            return self._post("/api/orders/", tokens[n % len(tokens)], bodies[index]), index

        result = self._load(factory)
        outcome = self._summarize(config, rnd, "spread", result)
        sold = dict(
            RepairOrder.objects.filter(variant_id__in=ids)
            .values_list("variant_id")
            .annotate(n=Count("id"))
        )
        stock = dict(ServiceVariant.objects.filter(id__in=ids).values_list("id", "stock"))
        outcome.oversold = sum(max(0, sold.get(v, 0) - SPREAD_STOCK) for v in ids)
        outcome.refused_while_available = sum(
            1 for r in result.responses if r.status == 409 and stock[ids[r.tag]] > 0
        )
        problems = []
        if min(stock.values()) < 0:
            problems.append("negative stock")
        if any(stock[v] != SPREAD_STOCK - sold.get(v, 0) for v in ids):
            problems.append("stock + orders != initial stock")
        if sum(sold.values()) != outcome.ok:
            problems.append(f"{outcome.ok} answered 2xx but {sum(sold.values())} orders exist")
        outcome.consistent = not problems
        outcome.notes += problems
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
    ("config", 8),
    ("rnd", 3),
    ("scenario", 8),
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

        spread_ratio, hot_ratio = med("spread", "ratio"), med("hot", "ratio")
        p99 = max(med("spread", "p99_ms"), med("hot", "p99_ms"))
        lines.append(f"{config}: median over {len({o.round for o in mine})} round(s)")
        if cpu("spread"):
            lines.append(
                "  server CPU per request (app+PostgreSQL+Redis): "
                f"baseline {cpu('baseline'):.2f} ms, booking {cpu('spread'):.2f} ms = "
                f"{cpu('baseline') / cpu('spread'):.0%} "
                "(the rate ratio a CPU-bound machine would give, unmoved by other load)"
            )
        checks = [
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
    django_setup(args.database_url, args.redis_url)
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
            bench = Bench(server.port, seed["tokens"], seed["vendor"], duration, CpuMeter(server))
            bench.trace_dir = trace_dir
            bench.warm_up(2.0 if args.quick else 4.0)
            memory[config] = []
            hot_stock: int | None = None
            for rnd in range(1, rounds + 1):
                base = bench.baseline(config, rnd)
                spread = bench.spread(config, rnd)
                # Size the storm so the sale lasts about `duration` seconds at the rate seen.
                hot_stock = hot_stock or max(100, int(spread.ok_per_s * duration / 2))
                hot = bench.hot(config, rnd, hot_stock)
                hot_stock = max(100, int(hot.ok_per_s * duration))
                for outcome in (base, spread, hot):
                    outcome.ratio = (
                        round(outcome.ok_per_s / base.ok_per_s, 3) if base.ok_per_s else 0
                    )
                    outcomes.append(outcome)
                    print(table([outcome]).splitlines()[-1], flush=True)
                    for note in outcome.notes:
                        print(f"      {note}", flush=True)
                memory[config].append(server.worker_rss_mib())
                print(f"      worker RSS after round {rnd}: {memory[config][-1]} MiB", flush=True)
            errors = server.log.read_text(errors="replace").count("Traceback")
            if errors:
                print(f"      {errors} tracebacks in {server.log}", flush=True)
        finally:
            server.stop()

    print()
    print(
        f"{args.clients} concurrent clients, {os.cpu_count()} cores, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {time.time() - started:.0f} s"
    )
    print(table(outcomes))
    print(
        "ok/s: successful requests per second (hot: until the last booking); ratio: ok/s over "
        "the same round's baseline;\np99 ok: p99 of 2xx answers only; refused*: 409 while stock "
        "remained; cpu ms/req: CPU per request of the gunicorn workers, PostgreSQL and Redis;\n"
        "client: the load client's CPU, % of one core; other: the machine's CPU spent elsewhere "
        "(other processes, unattributed kernel time), % of all cores"
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
