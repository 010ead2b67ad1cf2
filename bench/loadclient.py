"""A small HTTP/1.1 load client on one asyncio loop, with no dependency: closed-loop
(:func:`run_load`: N connections, each sending its next request as soon as the previous answer
is in, keep-alive) and open-loop (:func:`run_open_loop`: requests started at a fixed rate,
whatever the answers, as independent users would).

It is deliberately thin — prebuilt request bytes, a hand-written response parser that reads only
the status line and the framing headers — so that on a 2-core machine shared with the server it
costs a small, measured fraction of a core (``LoadResult.client_cpu``). Every response is kept
(status, send and receive times, the caller's tag) so correctness can be checked afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import resource
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

# A request factory gets the request's sequence number and returns (request bytes, tag), or
# ([request bytes, ...], [tag, ...]): requests one connection sends one after the other, each
# written when the previous answer is in (a Stripe redelivery after the first copy's answer).
RequestFactory = Callable[[int], tuple[bytes | list[bytes], Any]]
# Given a tag, the key of the pair it belongs to, or None: the two requests of a pair are written
# at the same moment by two connections, each waiting until the other picked its request up.
Rendezvous = Callable[[Any], Hashable | None]
# How long a pair's first half waits for its partner before it is sent alone (no deadlock when
# the partner is never picked up: fewer connections than pairs need, or the load ending).
RENDEZVOUS_TIMEOUT_S = 2.0


@dataclass(slots=True)
class Response:
    status: int  # 0: the connection failed before an answer
    sent: float  # time.monotonic()
    received: float
    tag: Any


@dataclass
class LoadResult:
    responses: list[Response]
    started: float  # time.monotonic()
    elapsed: float  # seconds from the first send to the last answer
    client_cpu: float  # the client's CPU seconds over the run
    reconnects: int
    samples: dict[int, bytes] = field(default_factory=dict)  # one body per unexpected status

    @property
    def wall_offset(self) -> float:
        """Add to a ``time.monotonic()`` value to get a ``time.time()`` value."""
        return _WALL_OFFSET


_WALL_OFFSET = time.time() - time.monotonic()


def build_request(
    method: str, path: str, host: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in {"POST", "PUT", "PATCH"}:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Closed(Exception):
    pass


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """``(status, body, server keeps the connection)`` of one response."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise _Closed from exc
    status = int(head[9:12])
    lower = head.lower()
    keep = b"\r\nconnection: close" not in lower and head.startswith(b"HTTP/1.1")
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        body = await reader.readexactly(int(lower[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from our servers
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    else:
        body = await reader.read()
        keep = False
    return status, body, keep


async def _load(
    host: str,
    port: int,
    factory: RequestFactory,
    concurrency: int,
    total: int | None,
    duration: float | None,
    timeout: float,
    stagger: float,
    rendezvous: Rendezvous | None,
    targets: list[tuple[str, int]],
) -> LoadResult:
    counter = itertools.count()
    waiting: dict[Hashable, asyncio.Future[None]] = {}
    responses: list[Response] = []
    samples: dict[int, bytes] = {}
    reconnects = 0
    started = time.monotonic()
    deadline = started + duration if duration is not None else float("inf")

    async def client(position: int) -> None:
        nonlocal reconnects
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        await asyncio.sleep(position * stagger)
        try:
            while True:
                number = next(counter)
                if (total is not None and number >= total) or time.monotonic() >= deadline:
                    return
                request, tag = factory(number)
                requests, tags = (request, tag) if isinstance(request, list) else ([request], [tag])
                if rendezvous is not None and len(requests) == 1:
                    await _meet(rendezvous(tags[0]))
                for request, tag in zip(requests, tags, strict=True):
                    if writer is None:
                        target = targets[position % len(targets)] if targets else (host, port)
                        reader, writer = await asyncio.open_connection(*target)
                    assert reader is not None
                    sent = time.monotonic()
                    try:
                        writer.write(request)
                        read = _read_response(reader)
                        status, body, keep = await asyncio.wait_for(read, timeout)
                    except (OSError, _Closed, TimeoutError, asyncio.IncompleteReadError):
                        status, body, keep = 0, b"", False
                    received = time.monotonic()
                    responses.append(Response(status, sent, received, tag))
                    _keep_sample(samples, status, body)
                    if not keep:
                        writer.close()
                        reader = writer = None
                        reconnects += 1
        finally:
            if writer is not None:
                writer.close()

    async def _meet(key: Hashable | None) -> None:
        if key is None:
            return
        partner = waiting.pop(key, None)
        if partner is not None:
            partner.set_result(None)
            return
        arrived = waiting[key] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(arrived, RENDEZVOUS_TIMEOUT_S)
        except TimeoutError:
            waiting.pop(key, None)

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.gather(*(client(position) for position in range(concurrency)))
    return _result(responses, started, cpu_before, reconnects, samples)


def _result(
    responses: list[Response],
    started: float,
    cpu_before: Any,
    reconnects: int,
    samples: dict[int, bytes],
) -> LoadResult:
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    last = max((r.received for r in responses), default=started)
    return LoadResult(
        responses=responses,
        started=started,
        elapsed=last - started,
        client_cpu=(cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
        reconnects=reconnects,
        samples=samples,
    )


def _keep_sample(samples: dict[int, bytes], status: int, body: bytes) -> None:
    """One body per unexpected status (0: the connection failed)."""
    if status >= 500 or status == 0 or status not in (200, 201, 409):
        samples.setdefault(status, body[:500])


def run_load(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    concurrency: int = 32,
    total: int | None = None,
    duration: float | None = None,
    timeout: float = 30.0,
    stagger: float = 0.0,
    rendezvous: Rendezvous | None = None,
    targets: list[tuple[str, int]] | None = None,
) -> LoadResult:
    """Send requests from ``factory`` over ``concurrency`` keep-alive connections until ``total``
    requests were sent or ``duration`` seconds passed, whichever comes first. ``stagger``: seconds
    between two connections' starts (opened all at once, they tend to land on one server process:
    with gunicorn, whichever worker wakes first accepts the whole burst). ``rendezvous``: which
    requests go out in pairs, written together (see ``Rendezvous``). ``targets``: several
    servers ``(host, port)`` instead of one, the connections spread over them in turn (a load
    balancer's round robin)."""
    if total is None and duration is None:
        raise ValueError("give total, duration or both")
    return asyncio.run(
        _load(
            host, port, factory, concurrency, total, duration, timeout, stagger, rendezvous,
            targets or [],
        )
    )  # fmt: skip


async def _open_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    rate: float,
    duration: float,
    max_connections: int,
    timeout: float,
) -> LoadResult:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(max_connections)
    responses: list[Response] = []
    samples: dict[int, bytes] = {}
    reconnects = 0

    async def one(number: int, due: float) -> None:
        nonlocal reconnects
        request, tag = factory(number)
        if isinstance(request, list):
            raise ValueError("an open loop sends one request per slot")
        async with slots:  # past max_connections a request waits here, and that wait counts
            connection = idle.pop() if idle else None
            keep = False
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                connection[1].write(request)
                answer = _read_response(connection[0])
                status, body, keep = await asyncio.wait_for(answer, timeout)
            except (OSError, _Closed, TimeoutError, asyncio.IncompleteReadError):
                status, body = 0, b""
            responses.append(Response(status, due, time.monotonic(), tag))
            _keep_sample(samples, status, body)
            if keep and connection is not None:
                idle.append(connection)  # the most recently freed is reused first, as a proxy does
            elif connection is not None:
                connection[1].close()
                reconnects += 1

    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    tasks = []
    for number in range(max(1, round(rate * duration))):
        due = started + number / rate
        if (delay := due - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(number, due)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return _result(responses, started, cpu_before, reconnects, samples)


def run_open_loop(
    host: str,
    port: int,
    factory: RequestFactory,
    *,
    rate: float,
    duration: float,
    max_connections: int = 256,
    timeout: float = 30.0,
) -> LoadResult:
    """Start ``rate`` requests a second for ``duration`` seconds, each at its due time whatever
    the answers (an open loop: what independent users do), on keep-alive connections taken from
    an idle pool or opened as needed, at most ``max_connections`` at once. A response's ``sent``
    is the request's *due* time, so a request the client could not send on time (no connection
    free) counts that wait: no coordinated omission. When the server cannot keep up, the latency
    grows with the run instead of the rate falling."""
    return asyncio.run(_open_loop(host, port, factory, rate, duration, max_connections, timeout))


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]
