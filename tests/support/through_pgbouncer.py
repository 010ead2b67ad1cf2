"""Run pytest with the database reached through PgBouncer in transaction pooling mode:
``python tests/support/through_pgbouncer.py [PYTEST ARGS…]`` (the ``pgbouncer`` nox session).

It starts a private PostgreSQL cluster, a ``pgbouncer`` in front of it (``pool_mode =
transaction``) and a private ``redis-server``, then runs pytest with ``DATABASE_URL`` pointing at
pgbouncer, ``DATABASE_POOLING=transaction`` (so the example site and the test process declare
it, and disable server-side cursors) and ``REDIS_URL`` at the private Redis. Every live site the
tests start (gunicorn, Huey consumers) inherits them. Everything is stopped and removed at the
end; the logs are kept when pytest failed.

``--reuse-db``: Django would drop the test database at the end, which PostgreSQL refuses while
pgbouncer keeps server connections to it open; the whole cluster is thrown away instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "faults"))  # the fault rig's private servers

from fault_rig import PrivatePostgres, PrivateRedis  # noqa: E402
from pgbouncer import PgBouncer  # noqa: E402


def main(pytest_args: list[str]) -> int:
    folder = Path(tempfile.mkdtemp(prefix="marketlink-pgbouncer-"))
    folder.chmod(0o755)  # the cluster's and pgbouncer's owner (postgres) must reach inside
    (folder / "pg").mkdir()
    started: list[object] = []
    code = 1
    try:
        postgres = PrivatePostgres(folder / "pg").init()
        started.append(postgres)
        bouncer = PgBouncer(
            folder / "pgbouncer", server_host=postgres.host, server_port=postgres.port
        ).start()
        started.append(bouncer)
        redis = PrivateRedis(folder).start()
        started.append(redis)
        env = dict(os.environ)
        env |= {
            "DATABASE_URL": bouncer.url("ml_pgbouncer"),
            "DATABASE_POOLING": "transaction",
            "REDIS_URL": redis.url(0),
        }
        print(f"through pgbouncer {bouncer.url('ml_pgbouncer')} -> {postgres.url('')}", flush=True)
        command = [sys.executable, "-m", "pytest", "--reuse-db", "-p", "no:cacheprovider"]
        code = subprocess.run([*command, *pytest_args], env=env, check=False).returncode
    finally:
        for server in reversed(started):
            with contextlib.suppress(Exception):
                server.stop()  # type: ignore[attr-defined]
        if code == 0:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"logs kept in {folder}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
