"""Debian's ``pgbouncer`` in transaction pooling mode, in front of one PostgreSQL server: a
config of its own in a folder of its own, on a port of its own, for the PgBouncer session and
the scale rig.

pool_mode = transaction: a client holds a server connection only for the length of a
transaction, so every transaction of a Django connection may run on another server connection.
What marketlink must not rely on then (server-side cursors, prepared statements, session SETs,
session advisory locks, LISTEN) is in the deployment docs; ``marketlink.W004`` checks the
settings. pgbouncer refuses to run as root, so it runs as the ``postgres`` user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from live_site import free_port

CONFIG = """\
[databases]
* = host={server_host} port={server_port}

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
server_login_retry = 1
server_connect_timeout = 5
query_wait_timeout = 30
ignore_startup_parameters = extra_float_digits
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
admin_users = postgres
"""


def missing() -> list[str]:
    return [name for name in ("pgbouncer",) if shutil.which(name) is None]


class PgBouncer:
    """``start()`` writes the config and runs ``pgbouncer`` in the foreground (as ``postgres``
    when this process is root); ``prefix``: what it runs under (``ip netns exec``, the scale
    rig's hosts); ``pool_size``: server connections per database and user."""

    def __init__(
        self,
        folder: Path,
        *,
        server_host: str,
        server_port: int,
        host: str = "127.0.0.1",
        port: int | None = None,
        pool_size: int = 20,
        prefix: Sequence[str] = (),
    ) -> None:
        self.folder = folder
        self.server_host, self.server_port = server_host, server_port
        self.host, self.port, self.pool_size = host, port or free_port(), pool_size
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        self.folder.mkdir(parents=True, exist_ok=True)
        settings = vars(self) | {"folder": self.folder}
        (self.folder / "pgbouncer.ini").write_text(CONFIG.format(**settings))
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        as_postgres = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        command = [*self.prefix, *as_postgres, "pgbouncer", str(self.folder / "pgbouncer.ini")]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.folder / "pgbouncer.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"pgbouncer exited ({self.proc.returncode}): {log}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not listen within 20 s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: pgbouncer closes every connection and exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def url(self, name: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{name}"
