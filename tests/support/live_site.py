"""The example site as separate processes against the test database: gunicorn for HTTP, and
Huey consumers (``manage.py run_huey``). Processes, not threads: what is proven must hold across
processes, as in production."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

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
    env: dict[str, str], *, workers: int = 2, threads: int = 8, log: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn serving the example site with ``env``; ``log`` collects what it prints."""
    port = free_port()
    output = log.open("wb") if log is not None else None
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            "--chdir",
            str(EXAMPLE),
            "--bind",
            f"127.0.0.1:{port}",
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
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise AssertionError("gunicorn exited") from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gunicorn did not start")


def start_huey(
    env: dict[str, str], *, workers: int = 2, periodic: bool = False
) -> subprocess.Popen[bytes]:
    """A Huey consumer of the example site (its queue is Redis at REDIS_URL); ``periodic``: with
    its scheduler running the periodic jobs (checked when it starts, then once a minute)."""
    return subprocess.Popen(
        [
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
