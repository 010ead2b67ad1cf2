"""The fault suite's rig, started once per session, and its policy.

Tests here are marked ``faults`` and run only when the marker expression asks for them
(``pytest -m faults tests/faults``, i.e. ``nox -s faults``); every other session leaves them out.
A binary the rig needs that is missing skips the suite on a laptop and fails it when
``CI=true``.

The test process reads and checks the data through the ORM, connected to the rig's private
cluster instead of a test database (there is no other writer to isolate from), so every case
sees the orders of the cases before it and the invariants hold over all of them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pgbouncer
import pytest
from django.db import connections
from fault_rig import (
    FaultProxy,
    PrivatePostgres,
    PrivateRedis,
    call,
    children,
    missing_binaries,
)
from live_site import (
    EXAMPLE,
    point_orm_at,
    run_marketlink,
    site_env,
    start_gunicorn,
    start_huey,
    stop,
    wait_for,
)
from opt_in import only_when_asked

from marketlink.testing.stripe_server import StripeStandIn

HERE = Path(__file__).parent
API_KEY = "sk_test_marketlink_faults"
WEBHOOK_SECRET = "whsec_marketlink_faults"
DATABASE = "ml_faults"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only_when_asked(config, items, HERE, "faults")


@dataclass
class Rig:
    folder: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    standin: StripeStandIn
    proxy: FaultProxy
    env: dict[str, str]
    site: str = ""
    gunicorn: Any = None
    huey: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        return self.folder / "mail"

    @property
    def webhook_url(self) -> str:
        return f"{self.site}/api/webhooks/payment/"

    @property
    def connect_url(self) -> str:
        return f"{self.site}/api/webhooks/connect/"

    def start_huey(self) -> None:
        """The consumer as production runs it: with its scheduler (the outbox's periodic
        drain is what finds what a lost wake or a killed drainer left)."""
        self.huey = start_huey(self.env, workers=2, periodic=True)

    def workers_back(self) -> None:
        """gunicorn has all its workers again and the site answers."""
        wait_for(lambda: len(children(self.gunicorn.pid)) == 2, 60, "gunicorn's workers")
        health = f"{self.site}/api/health/"
        wait_for(lambda: call("GET", health)[0] == 200, 90, "the site to answer")

    def deliver(self, event: dict[str, Any], tries: int = 5) -> int:
        """Deliver ``event`` as Stripe does: again while it is not answered 2xx."""
        status = 0
        url = self.connect_url if "account" in event else self.webhook_url
        for _ in range(tries):
            status = self.standin.deliver(event, url)
            if 200 <= status < 300:
                break
        return status

    def restart_postgres(self, down_for: float = 0.0) -> None:
        """A fast shutdown cuts every connection (the site's and this process's)."""
        self.postgres.stop()
        if down_for:
            import time

            time.sleep(down_for)
        self.postgres.start()
        connections.close_all()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``marketlink`` on the example site, as an operator runs it."""
        return run_marketlink(self.env, *args)


def _create_database(postgres: PrivatePostgres) -> None:
    import psycopg

    with psycopg.connect(postgres.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


@pytest.fixture(scope="session")
def rig(django_db_blocker: Any) -> Iterator[Rig]:
    pooled = os.environ.get("DATABASE_POOLING") == "transaction"
    missing = missing_binaries() + (pgbouncer.missing() if pooled else [])
    if missing:
        reason = f"the fault rig needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="marketlink-faults-"))
    folder.chmod(0o755)  # the cluster's owner (postgres) must reach its folder inside
    (folder / "pg").mkdir()
    (folder / "mail").mkdir()
    postgres = PrivatePostgres(folder / "pg").init()
    # The pgbouncer session: the site and this process reach the cluster through PgBouncer in
    # transaction pooling mode (restarting PostgreSQL cuts its server connections only).
    bouncer = None
    if pooled:
        bouncer = pgbouncer.PgBouncer(
            folder / "pgbouncer", server_host="127.0.0.1", server_port=postgres.port
        )
        bouncer.start()
    redis = PrivateRedis(folder).start()
    standin = StripeStandIn(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, auto_deliver=False)
    standin.start()
    proxy = FaultProxy(target_port=int(standin.api_base.rsplit(":", 1)[1]))
    try:
        _create_database(postgres)
        with django_db_blocker.unblock():
            point_orm_at((bouncer or postgres).url(DATABASE))
        path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
        env = site_env(
            PYTHONPATH=path,
            REDIS_URL=redis.url(),
            STRIPE_SECRET_KEY=API_KEY,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE=proxy.url,
            STRIPE_CONNECT_WEBHOOK_SECRET=standin.connect_webhook_secret,
            # Vendors are paid out (a 10 % fee): every case's money is accounted for.
            MARKETLINK_PAYOUTS="on",
            MARKETLINK_PLATFORM_FEE_PERCENT="10",
            EMAIL_BACKEND="held_mail.HeldFileBackend",
            EMAIL_FILE_PATH=str(folder / "mail"),
            MARKETLINK_LOG_LEVEL="WARNING",
            # Storms from one address, many bookings per customer: limits lifted, as for a load
            # test (the abuse limits have their own tests).
            MARKETLINK_ABUSE_LIMITS="off",
            # A killed drainer's claims lapse after 10 s, not 5 minutes: the cases wait less.
            MARKETLINK_JSON='{"OUTBOX_CLAIM_SECONDS": 10}',
        )
        subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), "migrate", "--no-input", "-v0"],
            env=env,
            check=True,
            timeout=300,
        )
        rig = Rig(folder, postgres, redis, standin, proxy, env)
        rig.gunicorn, rig.site = start_gunicorn(
            env, workers=2, threads=2, log=folder / "gunicorn.log"
        )
        rig.start_huey()
        rig.workers_back()
        yield rig
    finally:
        for proc in (locals().get("rig") and (rig.huey, rig.gunicorn)) or ():
            if proc is not None:
                stop(proc)
        proxy.close()
        standin.stop()
        redis.stop()
        if bouncer is not None:
            bouncer.stop()
        with contextlib.suppress(subprocess.CalledProcessError):
            postgres.stop()
        print(f"\nfault rig logs kept in {folder}")


@pytest.fixture(autouse=True)
def _orm_on_the_rig(rig: Rig, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield
