"""The fault rig: every part a real process (or, for the fault proxy, a real socket) that a case
can stop, kill, slow down or restart, and none shared with anyone else on the machine.

- :class:`PrivatePostgres`: a cluster of its own (``initdb`` into a temporary folder, run as the
  ``postgres`` user because initdb refuses root), on its own port;
- :class:`PrivateRedis`: a ``redis-server`` on its own port, without persistence (a restart
  loses the queue and the locks, as a crashed cache would);
- :class:`FaultProxy`: a TCP forwarder between the site and the Stripe stand-in that can be told
  to hold every connection 5 s, or to drop them all;
- the site and its Huey consumer are ``live_site``'s gunicorn and ``run_huey``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from glob import glob
from pathlib import Path
from typing import Any

from live_site import free_port, wait_for

# The binaries the rig runs, found where Debian's packages put them.
POSTGRES_BIN = sorted(glob("/usr/lib/postgresql/*/bin"))[-1:]


def missing_binaries() -> list[str]:
    found = [name for name in ("redis-server", "runuser") if shutil.which(name) is None]
    for name in ("initdb", "pg_ctl"):
        if not POSTGRES_BIN or not Path(POSTGRES_BIN[0], name).exists():
            found.append(name)
    return found


def _reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
    except OSError:
        return False
    return True


class PrivatePostgres:
    """A throw-away cluster; ``restart`` is a fast shutdown (every connection is cut) and start.
    ``host`` and ``port``: where it listens (a free port by default); ``prefix``: what its
    commands run under (the scale rig's ``ip netns exec``, to run it on another simulated
    host)."""

    def __init__(
        self,
        folder: Path,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.host, self.prefix = host, list(prefix)
        self.port = port or free_port()
        self.bin = Path(POSTGRES_BIN[0])

    def _as_postgres(self, *command: str) -> None:
        as_root = os.geteuid() == 0
        prefix = [*self.prefix, *(["runuser", "-u", "postgres", "--"] if as_root else [])]
        done = subprocess.run([*prefix, *command], capture_output=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")

    def init(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
            "--no-sync", "--no-instructions",
        )  # fmt: skip
        if self.host != "127.0.0.1":  # clients on the other hosts of its network
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")

    def url(self, name: str) -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{name}"


class PrivateRedis:
    """A ``redis-server`` without persistence; ``host``, ``prefix`` and ``port`` as for
    :class:`PrivatePostgres`, ``options`` added to its command line (``--replicaof``)."""

    def __init__(
        self,
        folder: Path,
        host: str = "127.0.0.1",
        prefix: Sequence[str] = (),
        options: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        self.folder = folder
        self.host, self.prefix, self.options = host, list(prefix), list(options)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateRedis:
        self.proc = subprocess.Popen(
            [*self.prefix, "redis-server", "--port", str(self.port), "--bind", self.host,
             "--save", "", "--appendonly", "no", "--dir", str(self.folder),
             "--loglevel", "warning", *self.options],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: _reachable(self.port, self.host), 10, "redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``target``. ``mode``: ``"ok"``, ``"slow"`` (each new
    connection waits ``delay`` seconds before it is forwarded), ``"mute"`` (requests go through
    at once, their answers wait ``delay`` seconds: the provider acted, the caller does not know
    yet) or ``"down"`` (each connection is reset at once, as a host that refuses it)."""

    def __init__(self, target_port: int, delay: float = 5.0) -> None:
        self.target_port, self.delay = target_port, delay
        self.mode = "ok"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="fault-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def faulty(self, mode: str) -> Any:
        self.mode = mode
        try:
            yield self
        finally:
            self.mode = "ok"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self.mode == "down":
            client.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            client.close()
            return
        if self.mode == "slow":
            time.sleep(self.delay)
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=30)
        except OSError:
            client.close()
            return
        held = self.delay if self.mode == "mute" else 0.0
        for source, sink, wait in ((client, upstream, 0.0), (upstream, client, held)):
            threading.Thread(target=_pump, args=(source, sink, wait), daemon=True).start()

    def close(self) -> None:
        self._listener.close()


def _pump(source: socket.socket, sink: socket.socket, wait: float = 0.0) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if wait:
                time.sleep(wait)
                wait = 0.0
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (gunicorn's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def kill_one_worker(master: subprocess.Popen[bytes]) -> int:
    """SIGKILL one of gunicorn's workers; gunicorn's master starts another."""
    victim = children(master.pid)[0]
    os.kill(victim, signal.SIGKILL)
    return victim


class _Unfollowed(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx itself is the answer


_OPENER = urllib.request.build_opener()
_NO_REDIRECTS = urllib.request.build_opener(_Unfollowed)


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
    follow: bool = True,
) -> tuple[int, Any]:
    """One real HTTP request: ``(status, parsed JSON or text)``; status 0 when the connection
    was refused or dropped before an answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        opener = _OPENER if follow else _NO_REDIRECTS
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
        error.close()
    except (OSError, ConnectionError) as error:
        return 0, str(error)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")
