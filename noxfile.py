"""Every check marketlink runs, locally and in CI (``./dev test`` runs the default sessions).

Test sessions cover Python 3.11 + Django 5.2 LTS and Python 3.12 + Django 6.x, each on the
embedded default (SQLite, local-memory cache) and on PostgreSQL + Redis, plus the stock
``auth.User`` host configuration; ``tests_lowest`` runs the SQLite suite on the lowest releases
pyproject.toml allows. PostgreSQL/Redis sessions skip when the servers are unreachable
on a laptop, and fail when ``CI=true``.
"""

from __future__ import annotations

import os
import socket
import sys
from glob import glob
from shutil import which

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

STACKS = [("3.11", "5.2"), ("3.12", "6.1")]
# Each stack has a database and a Redis db of its own: ``./dev test`` runs the two stacks'
# sessions side by side, and two test runs sharing one would empty each other's.
DATABASE_URL = os.environ.get(
    "MARKETLINK_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/marketlink_py{python}"
)
REDIS_URL = os.environ.get("MARKETLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/{redis_db}")
REDIS_DB = {"3.11": "14", "3.12": "15"}
IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def _install(session: nox.Session, django: str, *groups: str) -> None:
    session.install(f"django~={django}.0", ".", *[f"--group={g}" for g in groups])


@nox.session(python=[p for p, _ in STACKS])
@nox.parametrize("db", ["sqlite", "postgres"])
def tests(session: nox.Session, db: str) -> None:
    """The test-suite on one stack, with the custom email user (and the stock User on SQLite)."""
    django = dict(STACKS)[session.python]  # type: ignore[index]
    env = {"DJANGO_SETTINGS_MODULE": "example_project.settings"}
    if db == "postgres":
        if not (_reachable("127.0.0.1", 5432) and _reachable("127.0.0.1", 6379)):
            if IN_CI:
                session.error("CI=true but PostgreSQL or Redis is unreachable on 127.0.0.1")
            session.skip("PostgreSQL or Redis is not running on 127.0.0.1")
        python = str(session.python)
        env |= {
            "DATABASE_URL": DATABASE_URL.format(python=python.replace(".", "")),
            "REDIS_URL": REDIS_URL.format(redis_db=REDIS_DB[python]),
        }
    skipped = [] if db == "postgres" else ["postgres", "redis"]
    if session.python != STACKS[-1][0]:
        # The fuzzers exercise the API's schema and an order's life, which do not vary with the
        # Python version: they run on the newest stack (both databases) and on the lowest
        # releases, which keeps CI inside its time.
        skipped.append("fuzz")
    marks = ["-m", " and ".join(f"not {mark}" for mark in skipped)] if skipped else []
    _install(session, django, "test")
    session.run("pytest", *marks, *session.posargs, env=env)
    if db == "sqlite" and session.python == STACKS[-1][0] and not session.posargs:
        # The stock auth.User host: everything that touches users, once more (on the newest
        # stack: the user model's shape does not vary with the Python version).
        session.run(
            "pytest",
            *marks,
            "--ds=example_project.settings_stock_user",
            "tests/accounts",
            "tests/vendors",
            "tests/catalog",
            "tests/orders",
            "tests/payments",
            "tests/payouts",
            env=env,
        )


@nox.session(python="3.12")
def faults(session: nox.Session) -> None:
    """The fault suite (tests/faults) on the newest stack: a private PostgreSQL cluster and Redis,
    gunicorn, a Huey consumer and the Stripe stand-in, each stopped, killed or slowed by a case.
    A missing binary (initdb, pg_ctl, redis-server, runuser) fails it when CI=true."""
    _install(session, dict(STACKS)["3.12"], "test")
    session.run(
        "pytest", "-m", "faults", "-p", "no:cacheprovider", "tests/faults", *session.posargs
    )


# What runs once more through PgBouncer: what depends on how connections and transactions
# behave (a storm's locks, concurrent webhooks, a consumer, the operator's commands), and the
# fault suite (PostgreSQL restarted behind PgBouncer).
THROUGH_PGBOUNCER = [
    "tests/orders/test_concurrency.py",
    "tests/payments/test_webhook_concurrency.py",
    "tests/payments/test_lost_day.py",
    "tests/core/test_transaction_pooling.py",
]


@nox.session(python="3.12")
def pgbouncer(session: nox.Session) -> None:
    """The concurrency, webhook, lost-day and fault tests with PostgreSQL behind Debian's
    PgBouncer in transaction pooling mode (``DATABASE_POOLING=transaction``): a private cluster,
    pgbouncer and Redis of their own (``tests/support/through_pgbouncer.py``; the fault rig puts
    a pgbouncer in front of its own cluster). A missing binary skips it, or fails it when
    CI=true."""
    missing = [name for name in ("pgbouncer", "redis-server", "runuser") if not which(name)]
    missing += [] if glob("/usr/lib/postgresql/*/bin/initdb") else ["initdb"]
    if missing:
        if IN_CI:
            session.error(f"CI=true but the pgbouncer session needs {', '.join(missing)}")
        session.skip(f"the pgbouncer session needs {', '.join(missing)}")
    _install(session, dict(STACKS)["3.12"], "test")
    session.run(
        "python", "tests/support/through_pgbouncer.py", *THROUGH_PGBOUNCER, *session.posargs
    )
    env = {"DATABASE_POOLING": "transaction"}
    session.run("pytest", "-m", "faults", "-p", "no:cacheprovider", "tests/faults", env=env)


@nox.session(python="3.12")
def scale(session: nox.Session) -> None:
    """The scale suite (tests/scale): two app hosts (gunicorn and a Huey consumer each), a data
    host (PostgreSQL behind PgBouncer, Redis with Sentinel) and a client, as Linux network
    namespaces on this machine (``tests/scale/hosts.py``, which removes them and every process in
    them whatever happens). Needs root: elsewhere it skips with the reason, and fails when
    CI=true."""
    sys.path.insert(0, "tests/scale")
    import hosts

    reason = hosts.missing()
    if reason:
        if IN_CI:
            session.error(f"CI=true but {reason}")
        session.skip(reason)
    _install(session, dict(STACKS)["3.12"], "test")
    session.run("python", "tests/scale/hosts.py", *session.posargs)


@nox.session(python="3.11", venv_backend="uv", reuse_venv=False)
def tests_lowest(session: nox.Session) -> None:
    """The SQLite suite on the lowest release of every runtime dependency (and of the ``testing``
    and ``binary`` extras) that pyproject.toml allows, so each floor is a version the suite
    passed on.

    marketlink installs first, its dependencies at their floors (uv's ``lowest-direct`` treats a
    local project's dependencies as direct). The test tools follow at their newest, constrained
    to what that first install chose, so they cannot move a runtime dependency up (uv would lift
    psycopg for the test group's ``psycopg[binary]``). A fresh virtualenv every run, or packages
    left by an earlier run would stand above the floors. The log's freeze shows what was tested.
    """
    session.install("--resolution=lowest-direct", ".[testing,binary]")
    frozen = session.run("uv", "pip", "freeze", silent=True)
    floors = os.path.join(session.create_tmp(), "floors.txt")
    with open(floors, "w") as out:
        out.writelines(f"{line}\n" for line in str(frozen).splitlines() if "==" in line)
    session.install("--group=test", "--constraint", floors)
    session.run("uv", "pip", "freeze", silent=False)
    session.run("pytest", "-m", "not postgres and not redis", *session.posargs)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    session.install("--group=lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.12")
def typing(session: nox.Session) -> None:
    session.install(".", "--group=typing", "--group=test")
    session.run("mypy", "src/marketlink")


@nox.session(python="3.12")
def migrations(session: nox.Session) -> None:
    """Shipped migrations match the models, for both kinds of host user model."""
    session.install(".")
    for settings in ("example_project.settings", "example_project.settings_stock_user"):
        session.run(
            "python",
            "example_project/manage.py",
            "makemigrations",
            "--check",
            "--dry-run",
            f"--settings={settings}",
        )


@nox.session(python="3.12")
def docs(session: nox.Session) -> None:
    session.install("--group=docs")
    session.run("mkdocs", "build", "--strict", "--site-dir", f"{session.create_tmp()}/site")


@nox.session(python="3.12")
def build(session: nox.Session) -> None:
    """Build sdist and wheel, install the wheel alone and smoke-test it."""
    tmp = session.create_tmp()
    session.install("build")
    session.run("python", "-m", "build", "--outdir", f"{tmp}/dist", ".")
    wheel = next(p for p in os.listdir(f"{tmp}/dist") if p.endswith(".whl"))
    session.install("--force-reinstall", f"{tmp}/dist/{wheel}")
    session.run("marketlink", "version")
    session.run(
        "python",
        "-c",
        "import marketlink, pathlib; p = pathlib.Path(marketlink.__file__).parent; "
        "assert (p / 'py.typed').exists(); "
        "assert list(p.glob('*/migrations/0001_initial.py')), 'migrations missing'; "
        "assert (p / 'payments/gateways/dummy/templates/dummy_checkout.html').exists()",
    )


@nox.session(python="3.12", default=False)
def demo(session: nox.Session) -> None:
    """The example site on the embedded default, with demo data."""
    session.install("-e", ".")
    manage = ["python", "example_project/manage.py"]
    # Vendors are paid out (a 10 % fee): each onboards at once on the dummy gateway's page.
    env = {"MARKETLINK_PAYOUTS": "on", "MARKETLINK_PLATFORM_FEE_PERCENT": "10"}
    session.run(*manage, "migrate", "--no-input", env=env)
    session.run(
        "marketlink",
        "--settings=example_project.settings",
        "--pythonpath=example_project",
        "seed",
        env=env,
    )
    address = (session.posargs or ["127.0.0.1:8000"])[0]
    session.log(f"marketlink demo: API http://{address}/api/  docs http://{address}/api/docs")
    session.log("log in as customer@example.com or vendor1@example.com, password demo-pass-123")
    session.log("a vendor's payouts: GET /api/vendors/payouts/ (and /entries/, /dashboard/)")
    session.run(*manage, "runserver", address, env=env)
