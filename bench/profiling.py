"""What ``profile_booking.py`` and ``profile_webhook.py`` share: their command line, the bench
stack set up in this process, CPU time split by phase and the Redis commands counted.

A phase is the CPU time (``time.thread_time``: what limits throughput on a busy machine) spent
inside one function, measured by wrapping it by name where it lives today. marketlink is being
reshaped, so a function may be renamed or moved: its phase is then skipped, and the report says
which names were not found, so that a missing line is not read as "costs nothing".
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from bench import stack


class Phases:
    """CPU time per wrapped function, and Redis commands by name, over one pass."""

    def __init__(self) -> None:
        self.times: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.order: list[str] = []
        self.missing: list[str] = []
        self.redis: Counter[str] = Counter()

    def timed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        self.order.append(name)
        times, calls = self.times, self.calls

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                times[name] += time.thread_time() - started

        return wrapper

    def wrap(self, owner: Any, attribute: str, name: str) -> None:
        function = getattr(owner, attribute, None)
        if function is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attribute}")
        else:
            setattr(owner, attribute, self.timed(name, function))

    def count_redis(self) -> None:
        """Count every command redis-py sends (a pipeline's too: they go through here)."""
        from redis.client import Redis

        original = Redis.execute_command
        commands = self.redis

        def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            commands[str(args[0]).upper()] += 1
            return original(self, *args, **options)

        Redis.execute_command = execute_command  # type: ignore[method-assign]

    def measure(self, name: str, call: Callable[[int], int], items: Sequence[int]) -> None:
        """Run ``call`` over ``items`` and print the CPU and wall time per request, the statuses,
        the Redis commands and the phases (CPU per request, calls per request)."""
        self.times.clear()
        self.calls.clear()
        self.redis.clear()
        cpu, wall = time.thread_time(), time.perf_counter()
        statuses = Counter(call(n) for n in items)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        per = 1000 / len(items)
        print(
            f"\n== {name}: {len(items)} requests {dict(statuses)}; per request: "
            f"{cpu * per:.3f} ms CPU of this process (test client included), "
            f"{wall * per:.3f} ms wall; Redis commands "
            f"{ {k: round(v / len(items), 2) for k, v in self.redis.items()} }"
        )
        for phase in self.order:
            if self.times[phase]:
                calls = self.calls[phase] / len(items)
                print(f"  {self.times[phase] * per:7.3f} ms  {calls:5.2f}x  {phase}")

    def report_missing(self) -> None:
        if self.missing:
            print(f"\nnot found, so not timed (renamed or moved?): {', '.join(self.missing)}")


def arguments(doc: str | None, count_name: str, count: int, top: int) -> argparse.Namespace:
    """The shared command line: ``--<count_name>``, ``--cprofile``, ``--top`` and the bench's
    database and Redis (the runner's defaults, ``bench/stack.py``)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(f"--{count_name}", type=int, default=count)
    parser.add_argument("--cprofile", action="store_true", help="cProfile's cumulative listing")
    parser.add_argument("--top", type=int, default=top, help="lines of the cProfile listing")
    parser.add_argument("--database-url", default=stack.DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=stack.DEFAULT_REDIS_URL)
    return parser.parse_args()


def setup(args: argparse.Namespace) -> dict[str, Any]:
    """Django on the bench settings, the bench database reset, migrated and seeded (as
    ``run.py`` does), marketlink's log silenced (a log line per request would be timed)."""
    stack.django_setup(args.database_url, args.redis_url)
    logging.getLogger("marketlink").handlers[:] = [logging.NullHandler()]
    logging.getLogger("marketlink").propagate = False
    stack.reset_stores(args.database_url, args.redis_url)
    return stack.migrate_and_seed()


def cprofile(title: str, call: Callable[[], object], top: int) -> None:
    """cProfile's cumulative listing of ``call`` in CPU time. It inflates ORM-heavy code
    several times: read it for shape, the phases for sizes."""
    profiler = cProfile.Profile(time.thread_time)
    profiler.enable()
    call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n== cProfile (CPU time) of {title}")
    print(out.getvalue())
