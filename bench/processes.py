"""The processes the runner starts and watches: gunicorn, the Huey consumer, and the CPU they,
PostgreSQL and Redis spend, read from ``/proc``."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.stack import HOST, ROOT


def _parent_death_signal() -> None:
    """In the child: die with the runner even if the runner is killed hard."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _spawn(command: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Any:
    """A child in its own session (a signal to the runner's group does not reach it first),
    logging to ``log``, that dies with the runner."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=_parent_death_signal,
            env=env,
        )


def _stop(proc: Any, sig: int) -> None:
    """Ask ``proc`` to stop with ``sig``; kill its group after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class HueyConsumer:
    """``manage.py run_huey`` of the example project on the bench settings (``RedisHuey`` on the
    bench Redis db), running beside gunicorn, so the invoices paid orders enqueue are sent while
    the load runs, as in production. Emails go to Django's locmem backend: rendered and
    "sent", delivered nowhere."""

    def __init__(
        self, workers: int, log: Path, *, periodic: bool = False, prefix: Sequence[str] = ()
    ) -> None:
        self.workers, self.log, self.periodic = workers, log, periodic
        self.prefix = list(prefix)  # what it runs under: another host (``bench/hosts.py``)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            *self.prefix,
            sys.executable,
            str(ROOT / "example_project" / "manage.py"),
            "run_huey",
            f"--workers={self.workers}",
            "--worker-type=thread",
            # The soak runs the periodic jobs (expiry, owed invoices, reconcile) as production
            # does; the benchmark's scenarios measure requests without them.
            *([] if self.periodic else ["--no-periodic"]),
        ]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
            "EMAIL_BACKEND": "bench.mail.DiscardingBackend",
        }
        self.proc = _spawn(command, self.log, env)
        time.sleep(0.5)
        if self.proc.poll() is not None:
            raise RuntimeError(f"run_huey exited ({self.proc.returncode}); see {self.log}")

    def pids(self) -> list[int]:
        return [] if self.proc is None else [self.proc.pid]

    def rss_mib(self) -> float | None:
        return rss_mib(self.proc.pid) if self.proc is not None else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGINT)  # Huey: finish the running tasks, then exit


class Gunicorn:
    """gunicorn serving the bench settings: ``worker_class`` ``gthread`` (``threads`` per
    worker, keep-alive) or ``sync`` (one request per worker at a time, one connection per
    request), both with ``bench/gunicorn_conf.py``; ``host`` and ``prefix``: the address it
    listens on and what it runs under, for another host (``bench/hosts.py``)."""

    def __init__(
        self,
        workers: int,
        threads: int,
        port: int,
        log: Path,
        worker_class: str = "gthread",
        *,
        host: str = HOST,
        prefix: Sequence[str] = (),
    ) -> None:
        self.workers, self.threads, self.port, self.log = workers, threads, port, log
        self.worker_class = worker_class
        self.host, self.prefix = host, list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            *self.prefix,
            sys.executable,
            "-m",
            "gunicorn",
            "example_project.wsgi:application",
            f"--config={ROOT / 'bench' / 'gunicorn_conf.py'}",
            f"--pythonpath={ROOT},{ROOT / 'example_project'}",
            f"--bind={self.host}:{self.port}",
            f"--worker-class={self.worker_class}",
            f"--workers={self.workers}",
            # gunicorn turns a sync worker with threads into gthread
            f"--threads={self.threads if self.worker_class == 'gthread' else 1}",
            "--keep-alive=5",
            f"--error-logfile={self.log}",
            "--log-level=warning",
        ]
        self.proc = _spawn(command, self.log)
        deadline = time.monotonic() + 60  # 8 workers importing the site on a busy machine
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({self.proc.returncode}); see {self.log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    sock.sendall(b"GET /bench/insert/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                    if sock.recv(16).startswith(b"HTTP/"):
                        break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"gunicorn did not answer within 60 s; see {self.log}")
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

    def connections_per_worker(self) -> list[int]:
        """The established client connections each worker holds now. The workers race to
        accept, so how the client's connections split between them is chance, and it moves
        the rates: a worker is one GIL, and the one holding most connections saturates first."""
        port = f":{self.port:04X}"
        sockets = set()
        master = self.proc.pid if self.proc is not None else "self"
        # The master's view of the network (its host's namespace, which may not be ours).
        for path in (f"/proc/{master}/net/tcp", f"/proc/{master}/net/tcp6"):
            try:
                lines = Path(path).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] == "01" and fields[1].endswith(port):  # ESTABLISHED, our port
                    sockets.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self.worker_pids():
            try:
                fds = list(Path(f"/proc/{pid}/fd").iterdir())
            except OSError:
                continue
            held = 0
            for fd in fds:
                try:
                    held += os.readlink(fd) in sockets
                except OSError:
                    continue
            counts.append(held)
        return counts

    def worker_rss_mib(self) -> list[float]:
        return [size for pid in self.worker_pids() if (size := rss_mib(pid)) is not None]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _stop(proc, signal.SIGINT)  # gunicorn: quick shutdown


def rss_mib(pid: int) -> float | None:
    """The resident memory of ``pid`` (MiB), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _redis_pids() -> list[int]:
    """The redis-server serving the bench's port. Other engineers' test runs may start and stop
    redis-servers of their own: counted too, one exiting between two readings makes a scenario's
    Redis CPU negative (seen once: -0.10 ms per request)."""
    port = urlsplit(os.environ["REDIS_URL"]).port or 6379
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "redis-server":
                    continue
                if f":{port}".encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuMeter:
    """CPU seconds spent by the gunicorn workers, PostgreSQL (this database's backends and the
    shared writer processes), Redis and the Huey consumer, read from /proc around a scenario."""

    def __init__(self, server: Gunicorn, consumer: HueyConsumer | None = None) -> None:
        self.server, self.consumer = server, consumer

    def _postgres_pids(self) -> list[int]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE (datname = current_database() "
                "AND pid <> pg_backend_pid()) OR backend_type IN "
                "('walwriter', 'checkpointer', 'background writer')"
            )
            return [row[0] for row in cursor.fetchall()]

    def snapshot(self, postgres_pids: list[int] | None = None) -> dict[str, float]:
        if postgres_pids is None:
            postgres_pids = self._postgres_pids()
        return {
            "app": sum(_cpu_seconds(p) for p in self.server.worker_pids()),
            "postgres": sum(_cpu_seconds(p) for p in postgres_pids),
            "redis": sum(_cpu_seconds(p) for p in _redis_pids()),
            "huey": sum(_cpu_seconds(p) for p in self.consumer.pids()) if self.consumer else 0.0,
        }

    @staticmethod
    def machine_busy() -> float:
        """CPU seconds the whole machine has been busy (all processes and the kernel)."""
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = ticks[3] + ticks[4]  # idle + iowait
        return (sum(ticks[:8]) - idle) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
