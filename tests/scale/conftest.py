"""The scale suite: marketlink on two app hosts, one data host and a client, simulated with
network namespaces by ``hosts.py`` (``nox -s scale``, root only), which runs this pytest on the
client host. Tests here are marked ``scale`` and run only when the marker expression asks for
them; outside the launcher (not root, or run by hand) the suite skips with the reason, and fails
instead when ``CI=true``.

The rig is started once per session; the cases share its data, as the fault suite's do, and the
last one runs the operator's recovery and checks the invariants over all of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The fault rig's private servers and shop helpers (tests/faults), also when only this
# folder is collected.
sys.path.insert(0, str(Path(__file__).parents[1] / "faults"))

import hosts
import psycopg
import pytest
from live_site import EXAMPLE, point_orm_at
from opt_in import only_when_asked
from scale_rig import DATABASE, AppHost, Balancer, DataHost, Rig

from marketlink.testing.stripe_server import StripeStandIn

HERE = Path(__file__).parent
API_KEY = "sk_test_marketlink_scale"
WEBHOOK_SECRET = "whsec_marketlink_scale"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    only_when_asked(config, items, HERE, "scale")


def _not_here(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def _site_env(data: DataHost, standin: StripeStandIn, folder: Path) -> dict[str, str]:
    env = dict(os.environ)
    env |= data.env() | {
        "DEBUG": "0",
        "ALLOWED_HOSTS": ",".join(hosts.ADDRESSES.values()),
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": standin.api_base,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(folder / "mail"),
        "MARKETLINK_LOG_LEVEL": "WARNING",
    }
    return env


@pytest.fixture(scope="session")
def rig(request: pytest.FixtureRequest, django_db_blocker: Any) -> Iterator[Rig]:
    run = os.environ.get("MARKETLINK_SCALE_RUN")
    if not run:
        _not_here(hosts.missing() or "run the scale suite through `nox -s scale` (hosts.py)")
    folder = Path(tempfile.mkdtemp(prefix="marketlink-scale-"))
    folder.chmod(0o755)  # the cluster's and pgbouncer's owner (postgres) must reach inside
    (folder / "mail").mkdir()
    data = DataHost(str(run), folder)
    apps = [
        AppHost(str(run), "app1", folder, periodic=True),
        AppHost(str(run), "app2", folder, periodic=False),
    ]
    client = hosts.ADDRESSES["client"]
    standin = StripeStandIn(
        api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, auto_deliver=False, host=client
    )
    try:
        data.start()
        standin.start()
        with psycopg.connect(data.postgres.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        env = _site_env(data, standin, folder)
        subprocess.run(
            [sys.executable, str(EXAMPLE / "manage.py"), "migrate", "--no-input", "-v0"],
            env=env,
            check=True,
            timeout=300,
        )
        with django_db_blocker.unblock():
            point_orm_at(data.bouncer.url(DATABASE))
        for app in apps:
            app.start(env)
        rig = Rig(str(run), folder, data, apps, standin, env, Balancer(apps))
        yield rig
    except BaseException:
        request.session.testsfailed += 1  # keep the logs of a rig that did not start
        raise
    finally:
        for app in apps:
            app.stop()
        standin.stop()
        data.stop()
        if not request.session.testsfailed:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"\nscale rig logs kept in {folder}")


@pytest.fixture(autouse=True)
def _orm_on_the_rig(rig: Rig, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield
