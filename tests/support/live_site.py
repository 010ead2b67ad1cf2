"""The example site as separate processes against the test database: gunicorn for HTTP, and
Huey consumers (``manage.py run_huey``). Processes, not threads: what is proven must hold across
processes, as in production."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from django.db import connection, connections

EXAMPLE = Path(__file__).parents[2] / "example_project"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The test database, as a DATABASE_URL the example settings understand."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return (
            f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        )
    return f"sqlite:///{db['NAME']}"


def point_orm_at(url: str) -> None:
    """This process's ORM on the database at ``url`` (a rig's own cluster) instead of a test
    database: a rig's checks read what its site wrote. Server-side cursors off when the
    environment says PgBouncer's transaction pooling is in front, as the example site does."""
    from django.conf import settings

    from example_project.settings import database_from_url

    connections.close_all()
    settings.DATABASES["default"] = database_from_url(url)
    if os.environ.get("DATABASE_POOLING") == "transaction":
        settings.DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    connections.__dict__.pop("settings", None)  # defaults filled in again for the new entry
    with contextlib.suppress(AttributeError):
        del connections["default"]


def site_env(**extra: str | None) -> dict[str, str]:
    """The environment of the example site; ``None`` removes a variable."""
    env = dict(os.environ)
    env |= {"DATABASE_URL": database_url(), "DEBUG": "0", "MARKETLINK_LOG_LEVEL": "ERROR"}
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def start_gunicorn(
    env: dict[str, str],
    *,
    workers: int = 2,
    threads: int = 8,
    log: Path | None = None,
    host: str = "127.0.0.1",
    prefix: Sequence[str] = (),
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn serving the example site with ``env``; ``log`` collects what it prints.
    ``host``: the address it listens on; ``prefix``: what it runs under (the scale rig's
    hosts)."""
    port = free_port()
    output = log.open("wb") if log is not None else None
    proc = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            "--chdir",
            str(EXAMPLE),
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            "--worker-class",
            "gthread",
            "--backlog",
            "512",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    if output is not None:
        output.close()  # the child has its own copy
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return proc, f"http://{host}:{port}"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("gunicorn exited") from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gunicorn did not start")


def start_huey(
    env: dict[str, str],
    *,
    workers: int = 2,
    periodic: bool = False,
    prefix: Sequence[str] = (),
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A Huey consumer of the example site (its queue is Redis at REDIS_URL); ``periodic``: with
    its scheduler running the periodic jobs (checked when it starts, then once a minute);
    ``prefix`` and ``log`` as for :func:`start_gunicorn`."""
    output = log.open("ab") if log is not None else None
    proc = subprocess.Popen(
        [
            *prefix,
            sys.executable,
            str(EXAMPLE / "manage.py"),
            "run_huey",
            "--workers",
            str(workers),
            "--worker-type",
            "thread",
            "--quiet",
            *([] if periodic else ["--no-periodic"]),
            "--max-delay",
            "0.5",
        ],
        env=env,
        cwd=str(EXAMPLE),
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    if output is not None:
        output.close()
    return proc


def run_marketlink(
    env: dict[str, str], *args: str, settings: str = "example_project.settings"
) -> subprocess.CompletedProcess[str]:
    """``marketlink`` on the example site (``settings``), as an operator runs it."""
    command = [str(Path(sys.executable).parent / "marketlink"), f"--settings={settings}"]
    return subprocess.run(
        [*command, f"--pythonpath={EXAMPLE}", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def stop(proc: subprocess.Popen[bytes], *, graceful: bool = False) -> None:
    """Terminate ``proc``; ``graceful`` (SIGINT, for a Huey consumer) lets running tasks end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT if graceful else signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(condition: Callable[[], Any], timeout: float = 120.0, what: str = "") -> Any:
    """``condition()``'s first true value, asked every 0.1 s for ``timeout`` seconds. Generous
    by default: a process starting Django on a loaded two-core machine can take most of a
    minute; the wait ends as soon as the condition holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
