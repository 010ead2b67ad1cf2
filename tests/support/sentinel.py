"""Debian's ``redis-sentinel``, watching one Redis primary, for the scale rig: each Sentinel has
a config file of its own (Sentinel rewrites it as it learns), and they agree on a failover by a
quorum. A primary is declared down after ``DOWN_AFTER_MS`` without an answer; the failover then
promotes a replica in a few seconds."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

SERVICE = "mymaster"
DOWN_AFTER_MS = 1000

CONFIG = """\
port {port}
bind {host}
protected-mode no
dir {folder}
sentinel monitor {service} {primary_host} {primary_port} {quorum}
sentinel down-after-milliseconds {service} {down_after}
sentinel failover-timeout {service} 5000
sentinel parallel-syncs {service} 1
"""


class RedisSentinel:
    def __init__(
        self,
        folder: Path,
        *,
        host: str,
        port: int,
        primary: tuple[str, int],
        quorum: int,
        prefix: Sequence[str] = (),
    ) -> None:
        self.folder, self.host, self.port = folder, host, port
        self.primary, self.quorum, self.prefix = primary, quorum, list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisSentinel:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "sentinel.conf"
        config.write_text(
            CONFIG.format(
                port=self.port,
                host=self.host,
                folder=self.folder,
                service=SERVICE,
                primary_host=self.primary[0],
                primary_port=self.primary[1],
                quorum=self.quorum,
                down_after=DOWN_AFTER_MS,
            )
        )
        log = (self.folder / "sentinel.log").open("ab")
        self.proc = subprocess.Popen(
            [*self.prefix, "redis-sentinel", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        return self

    def primary_now(self) -> tuple[str, int] | None:
        """The primary this Sentinel names now (None while it cannot say)."""
        import redis

        try:
            client = redis.Redis(
                self.host,
                self.port,
                socket_timeout=1,
                socket_connect_timeout=1,
                decode_responses=True,
            )
            address = client.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        return (str(address[0]), int(address[1])) if address else None

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
