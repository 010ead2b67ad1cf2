"""The scale rig's machines: Linux network namespaces on this one, joined by a bridge, and the
launcher that runs the scale suite inside them (``python tests/scale/hosts.py [PYTEST ARGS…]``,
the ``scale`` nox session; root only).

Five namespaces, each named ``mlscale-<launcher pid>-<host>``:

- ``lan``: a bridge, the switch every host is plugged into (no address of its own);
- ``data`` (10.77.0.2): PostgreSQL behind PgBouncer, a Redis primary and replica, three
  Sentinels;
- ``app1`` (10.77.0.11), ``app2`` (10.77.0.12): gunicorn and a Huey consumer each;
- ``client`` (10.77.0.100): pytest itself (the load client, the checks, the Stripe stand-in).

Only addresses inside these namespaces are used; the machine's own network is not touched.
Whatever happens (an error, Ctrl-C, SIGTERM, a killed pytest), every process inside them is
killed and they are deleted: try/finally, atexit, and at start the namespaces of launchers that
are no longer alive.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PREFIX = "mlscale"
NETWORK = "10.77.0.{}/24"
ADDRESSES = {
    "data": "10.77.0.2",
    "app1": "10.77.0.11",
    "app2": "10.77.0.12",
    "client": "10.77.0.100",
}
HOSTNAMES = {"app1": "scale-app1", "app2": "scale-app2"}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def missing() -> str | None:
    """Why the rig cannot run here, or None."""
    if os.geteuid() != 0:
        return "the scale rig needs root (network namespaces)"
    needed = ["ip", "unshare", "setpriv", "runuser", "pgbouncer", "redis-server", "redis-sentinel"]
    absent = [name for name in needed if shutil.which(name) is None]
    return f"the scale rig needs {', '.join(absent)}" if absent else None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def namespace(run: str, host: str) -> str:
    return f"{PREFIX}-{run}-{host}"


def in_host(run: str, host: str) -> list[str]:
    """The command prefix that runs a program on ``host``: in its network namespace and, for
    the app hosts, in a UTS namespace of its own with the host's name (what a heartbeat
    records as its host)."""
    prefix = ["ip", "netns", "exec", namespace(run, host)]
    if host in HOSTNAMES:
        script = 'hostname "$0" && exec "$@"'
        prefix += ["unshare", "--uts", "--", "sh", "-c", script, HOSTNAMES[host]]
    return prefix


def create(run: str) -> None:
    lan = namespace(run, "lan")
    _ip("netns", "add", lan)
    _ip("-n", lan, "link", "add", "name", "br0", "type", "bridge")
    _ip("-n", lan, "link", "set", "br0", "up")
    for host, address in ADDRESSES.items():
        ns = namespace(run, host)
        _ip("netns", "add", ns)
        port = f"to-{host}"
        _ip("-n", lan, "link", "add", "name", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns)  # fmt: skip
        _ip("-n", lan, "link", "set", port, "master", "br0")
        _ip("-n", lan, "link", "set", port, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")


def set_link(run: str, host: str, up: bool) -> None:
    """Unplug ``host`` from the switch (or plug it back in)."""
    _ip("-n", namespace(run, host), "link", "set", "eth0", "up" if up else "down")


def kill_everything_in(ns: str) -> None:
    pids = _ip("netns", "pids", ns, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def destroy(run: str) -> None:
    for host in [*ADDRESSES, "lan"]:
        ns = namespace(run, host)
        kill_everything_in(ns)
        _ip("netns", "delete", ns, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def destroy_stale() -> None:
    """The namespaces of earlier launchers that died without cleaning up."""
    runs = set()
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if len(parts) == 3 and parts[0] == PREFIX and parts[1].isdigit():
            runs.add(parts[1])
    for run in runs:
        if not _alive(int(run)):
            destroy(run)


def main(pytest_args: list[str]) -> int:
    reason = missing()
    if reason:
        print(reason, file=sys.stderr)
        return 4
    destroy_stale()
    run = str(os.getpid())
    atexit.register(destroy, run)
    # SIGTERM (a CI timeout, nox interrupted) must still reach the finally and atexit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        create(run)
        env = dict(os.environ)
        path = [str(HERE), *(str(ROOT / "tests" / name) for name in ("support", "faults"))]
        env |= {
            "MARKETLINK_SCALE_RUN": run,
            "PYTHONPATH": os.pathsep.join(filter(None, [*path, env.get("PYTHONPATH")])),
            "DJANGO_SETTINGS_MODULE": "scale_settings",
        }
        command = [*in_host(run, "client"), sys.executable, "-m", "pytest", "-m", "scale",
                   "-p", "no:cacheprovider", str(HERE), *pytest_args]  # fmt: skip
        return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    finally:
        destroy(run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
