"""The scale rig's processes, on the hosts of ``hosts.py``: the data host's stores, the app
hosts' gunicorn and Huey consumer, and the client's load balancing.

- data (10.77.0.2): a private PostgreSQL cluster (5432) behind PgBouncer in transaction pooling
  mode (6432); a Redis primary (6379) and its replica (6380); three Sentinels (26379-26381,
  quorum 2) naming the primary of the service ``mymaster``.
- app1 and app2: gunicorn (2 workers x 4 threads) and a Huey consumer (2 threads) each, on the
  same settings (``scale_settings``); app1's consumer alone runs the scheduler
  (``--no-periodic`` on app2).
- client: this process, which spreads requests over the app hosts as a load balancer does:
  round robin over the hosts it believes up, and a request whose connection fails (status 0)
  goes to the next host, where an ``Idempotency-Key`` makes a retried booking answer the same
  order.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import hosts
from fault_rig import PrivatePostgres, PrivateRedis, call
from live_site import run_marketlink, start_gunicorn, start_huey, stop, wait_for
from pgbouncer import PgBouncer
from sentinel import SERVICE, RedisSentinel

DATA = hosts.ADDRESSES["data"]
# Well-known ports: each host is a network namespace of its own, nothing else listens there.
POSTGRES_PORT, PGBOUNCER_PORT, REDIS_PORTS = 5432, 6432, (6390, 6391)
SENTINEL_PORTS = (26379, 26380, 26381)
DATABASE = "ml_scale"
WORKERS, THREADS = 2, 4


@dataclass
class DataHost:
    run: str
    folder: Path
    pool_size: int = 20  # PgBouncer's server connections per database and user
    postgres: PrivatePostgres = field(init=False)
    bouncer: PgBouncer = field(init=False)
    primary: PrivateRedis = field(init=False)
    replica: PrivateRedis = field(init=False)
    sentinels: list[RedisSentinel] = field(default_factory=list)

    def start(self) -> DataHost:
        prefix = hosts.in_host(self.run, "data")
        for part in ("pg", "primary", "replica"):
            (self.folder / part).mkdir()
        self.postgres = PrivatePostgres(
            self.folder / "pg", host=DATA, prefix=prefix, port=POSTGRES_PORT
        ).init()
        self.bouncer = PgBouncer(
            self.folder / "pgbouncer",
            server_host=DATA,
            server_port=self.postgres.port,
            host=DATA,
            port=PGBOUNCER_PORT,
            pool_size=self.pool_size,
            prefix=prefix,
        ).start()
        # Without a password, Redis answers only its own loopback unless told otherwise; these
        # hosts' network is private to the rig (a deployment sets passwords: see the docs).
        opened = ["--protected-mode", "no"]
        self.primary = PrivateRedis(
            self.folder / "primary", host=DATA, prefix=prefix, options=opened, port=REDIS_PORTS[0]
        ).start()
        replica_of = [*opened, "--replicaof", DATA, str(self.primary.port)]
        self.replica = PrivateRedis(
            self.folder / "replica", host=DATA, prefix=prefix, options=replica_of,
            port=REDIS_PORTS[1],
        ).start()  # fmt: skip
        for number, port in enumerate(SENTINEL_PORTS):
            sentinel = RedisSentinel(
                self.folder / f"sentinel{number}",
                host=DATA,
                port=port,
                primary=(DATA, self.primary.port),
                quorum=2,
                prefix=prefix,
            )
            self.sentinels.append(sentinel.start())
        wait_for(lambda: self.agreed_primary() == (DATA, self.primary.port), 30, "the Sentinels")
        return self

    def agreed_primary(self) -> tuple[str, int] | None:
        """The primary every Sentinel names, when they agree."""
        named = {sentinel.primary_now() for sentinel in self.sentinels}
        return named.pop() if len(named) == 1 else None

    def env(self) -> dict[str, str]:
        """How every host reaches the stores, as a deployment's environment says it."""
        return {
            "DATABASE_URL": self.bouncer.url(DATABASE),
            "DATABASE_POOLING": "transaction",
            "REDIS_URL": f"redis://{SERVICE}/0",
            "REDIS_SENTINELS": ",".join(f"{DATA}:{port}" for port in SENTINEL_PORTS),
        }

    def stop(self) -> None:
        for sentinel in self.sentinels:
            with contextlib.suppress(Exception):
                sentinel.stop()
        for server in (self.replica, self.primary, self.bouncer):
            with contextlib.suppress(Exception):
                server.stop()
        with contextlib.suppress(Exception):
            self.postgres.stop()


@dataclass
class AppHost:
    """One app host: gunicorn and a Huey consumer, started, killed (every process of the host
    SIGKILLed and its cable pulled: the machine is gone) and brought back."""

    run: str
    name: str
    folder: Path
    periodic: bool
    site: str = ""
    gunicorn: Any = None
    huey: Any = None

    @property
    def prefix(self) -> list[str]:
        return hosts.in_host(self.run, self.name)

    @property
    def address(self) -> str:
        return hosts.ADDRESSES[self.name]

    def start(self, env: dict[str, str]) -> AppHost:
        self.gunicorn, self.site = start_gunicorn(
            env,
            workers=WORKERS,
            threads=THREADS,
            log=self.folder / f"{self.name}-gunicorn.log",
            host=self.address,
            prefix=self.prefix,
        )
        self.start_consumer(env, periodic=self.periodic)
        return self

    def start_consumer(self, env: dict[str, str], *, periodic: bool) -> None:
        if self.huey is not None:
            stop(self.huey, graceful=True)
        self.huey = start_huey(
            env, periodic=periodic, prefix=self.prefix, log=self.folder / f"{self.name}-huey.log"
        )

    def answers(self) -> bool:
        return call("GET", f"{self.site}/api/health/", timeout=5)[0] == 200

    def kill(self) -> None:
        hosts.kill_everything_in(hosts.namespace(self.run, self.name))
        hosts.set_link(self.run, self.name, up=False)
        for proc in (self.gunicorn, self.huey):
            proc.wait(timeout=10)

    def revive(self, env: dict[str, str], *, periodic: bool) -> None:
        hosts.set_link(self.run, self.name, up=True)
        self.huey = None
        self.periodic = periodic
        self.start(env)
        wait_for(self.answers, 60, f"{self.name} to answer")

    def stop(self) -> None:
        for proc in (self.huey, self.gunicorn):
            if proc is not None:
                stop(proc)


class Balancer:
    """Round robin over the app hosts believed up; a connection that fails marks its host
    down and the request goes to the next one (as a load balancer's passive health check and
    retry do)."""

    def __init__(self, apps: list[AppHost]) -> None:
        self.apps = apps
        self.down: set[str] = set()
        self._turn = itertools.count()
        self._lock = threading.Lock()

    def order(self) -> list[AppHost]:
        with self._lock:
            start = next(self._turn)
        ring = [self.apps[(start + n) % len(self.apps)] for n in range(len(self.apps))]
        return [app for app in ring if app.name not in self.down] or ring

    def request(self, send: Callable[[str], tuple[int, Any]]) -> tuple[int, Any, str]:
        """``send(site)`` on the next host up, again on the others while the connection fails:
        ``(status, body, host)`` of the last try."""
        status, body, host = 0, None, ""
        for app in self.order():
            status, body = send(app.site)
            host = app.name
            if status != 0:
                return status, body, host
            self.down.add(app.name)
        return status, body, host


class Answer(NamedTuple):
    """One booking of a storm: who, with which key, what came back from which host, when it
    was sent and how long it took."""

    token: str
    key: str | None
    status: int
    body: Any
    host: str
    sent: float
    took: float


@dataclass
class Rig:
    run: str
    folder: Path
    data: DataHost
    apps: list[AppHost]
    standin: Any
    env: dict[str, str]
    balancer: Balancer

    def app(self, name: str) -> AppHost:
        return next(app for app in self.apps if app.name == name)

    @property
    def site(self) -> str:
        """The site as the load balancer hands it out next (``fault_shop``'s helpers use it)."""
        return self.balancer.order()[0].site

    def book(self, token: str, variant_id: Any, key: str | None = None) -> tuple[int, Any, str]:
        """A booking through the load balancer: ``(status, body, host)``."""
        from fault_shop import book  # marketlink's models: imported once Django is set up

        return self.balancer.request(lambda site: book(site, token, variant_id, key))

    def paid_events(self, orders: int) -> list[dict[str, Any]]:
        """``orders`` orders (each a new customer's, of a variant of its own) booked through the
        load balancer and paid at the stand-in: their events, not delivered yet."""
        from fault_shop import customer, paid_at_provider

        from marketlink.testing.factories import VariantFactory

        events = []
        for _ in range(orders):
            token = customer()
            status, body, _ = self.book(token, VariantFactory(stock=5).id)
            assert status == 201, body
            events += paid_at_provider(self, token, body["data"]["id"])
        return events

    def booking_storm(
        self,
        bookings: Iterable[tuple[str, str | None]],
        variant_id: Any,
        threads: int,
        fault: Callable[[], None],
    ) -> list[Answer]:
        """``threads`` clients book ``variant_id`` through the load balancer, each taking the
        next ``(token, Idempotency-Key)`` of ``bookings``, 0.2 s apart, while ``fault`` runs in
        this thread: every answer. A booking with a key whose answer never came (both hosts
        failed it: one killed, the other too slow to answer in time) is asked again with it, as
        a client does."""
        from fault_shop import storm

        queue, taking = iter(bookings), threading.Lock()

        def each(number: int) -> list[Answer]:
            seen = []
            while True:
                with taking:
                    booking = next(queue, None)
                if booking is None:
                    return seen
                sent = time.monotonic()
                for _ in range(3):  # a client whose answer never came asks again, with its key
                    status, body, host = self.book(booking[0], variant_id, booking[1])
                    if status != 0 or booking[1] is None:
                        break
                seen.append(Answer(*booking, status, body, host, sent, time.monotonic() - sent))
                time.sleep(0.2)

        return [answer for seen in storm(threads, each, fault) for answer in seen]

    def deliver(self, event: dict[str, Any], tries: int = 5) -> int:
        """Deliver ``event`` as Stripe does, to the load balancer: again while it is not
        answered 2xx."""
        status = 0
        for _ in range(tries):
            status, _, _ = self.balancer.request(
                lambda site: (self.standin.deliver(event, f"{site}/api/webhooks/payment/"), None)
            )
            if 200 <= status < 300:
                break
        return status

    @property
    def outbox(self) -> Path:
        return self.folder / "mail"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``marketlink`` as an operator runs it, from the client host."""
        return run_marketlink(self.env, *args, settings="scale_settings")

    def doctor(self, check: str) -> dict[str, Any]:
        """``marketlink doctor``'s item for ``check``."""
        done = self.cli("doctor", "--json")
        items = {item["check"]: item for item in json.loads(done.stdout)["items"]}
        return dict(items[check])
