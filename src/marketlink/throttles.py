"""Throttles: how many requests one user or one address may make, per operation, in a period.

Each throttle names a ``MARKETLINK`` setting holding its rate ("60/min"; None: off) and reads it
on every request, so a host (or its tests, via ``override_settings``) changes a rate without
re-importing the routers. Counts live in the ``THROTTLE_CACHE`` alias (the default cache; Redis
in production), so every web worker shares them.

Why not ninja's ``SimpleRateThrottle``: it keeps the request being checked on the throttle
object (``self.key``, ``self.history``, ``self.now``), and one object serves every request of
its operation, so under a threaded server one request's ``wait()`` reads another's history. And
it reads the history, appends and writes it back, so concurrent requests overwrite each other's
hits and more than the limit get through. Here the count is one atomic ``incr`` per request (a
sliding window over two fixed windows, as Cloudflare's limiter does), nothing of a request is
kept on a shared object except, per thread, the answer ninja asks for next (``wait``).

A throttle never turns a cache outage into an error: when the cache cannot be reached the
request passes, a warning is logged once per outage, and the cache is not asked again for a few
seconds (``marketlink.outages``).

The client address is ``REMOTE_ADDR``. ``X-Forwarded-For`` is believed only when the host says how
many proxies stand in front of it (``NINJA_NUM_PROXIES``); otherwise any client could send a new
"address" with every request and never be throttled.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from ninja.throttling import BaseThrottle, SimpleRateThrottle

from marketlink import conf
from marketlink.envelope import throttled_response
from marketlink.exceptions import Throttled
from marketlink.outages import Outage

logger = logging.getLogger(__name__)

Per = Literal["user", "address"]


_health = Outage(
    logger,
    event="throttle_cache",
    went_down="throttle cache unreachable (%s); requests pass unthrottled until it is back",
    came_back="throttle cache is reachable again; throttles resume",
)


def parse_rate(rate: str) -> tuple[int, int]:
    """``"60/min"`` -> ``(60, 60)``: requests allowed, period in seconds (ninja's notation)."""
    count, period = SimpleRateThrottle.parse_rate(SimpleRateThrottle, rate)  # type: ignore[arg-type]
    return int(count or 0), int(period or 0)


def client_address(request: HttpRequest) -> str:
    from ninja.conf import settings as ninja_settings

    if ninja_settings.NUM_PROXIES is None:
        return str(request.META.get("REMOTE_ADDR", ""))
    return str(BaseThrottle().get_ident(request))


def _count_hit(key: str, timeout: int) -> int:
    """Add one to ``key`` atomically and return the new count (created with ``timeout``)."""
    cache = caches[conf.get().THROTTLE_CACHE]
    try:
        return int(cache.incr(key))
    except ValueError:  # no such key yet; of two racing creators, one adds and one increments
        if cache.add(key, 1, timeout):
            return 1
        return int(cache.incr(key))


def _retry_after(limit: int, period: int, previous: int, current: int, elapsed: float) -> int:
    """Whole seconds until ``previous`` (decaying) plus ``current`` leaves room for one more."""
    if current < limit:  # room comes in this window, as the previous window's weight falls
        needed = period * (1 - (limit - 1 - current) / previous)
        return max(1, math.ceil(needed - elapsed))
    # Only in the next window, as this window's count (then the previous one) decays.
    needed = period * (1 - (limit - 1) / current)
    return max(1, math.ceil(period - elapsed + needed))


def refusal(request: HttpRequest, setting: str, per: Per, scope: str) -> int | None:
    """Count this request against ``setting``'s rate: None if it may go on, else the seconds the
    client should wait (the request is then not counted, so waiting that long is enough)."""
    rate = getattr(conf.get(), setting)
    if rate is None or not _health.usable():
        return None
    limit, period = parse_rate(rate)
    ident = request.auth.pk if per == "user" else client_address(request)  # type: ignore[attr-defined]
    now = time.time()
    window = int(now // period)
    key = f"marketlink:throttle:{scope}:{per}:{ident}:"
    cache = caches[conf.get().THROTTLE_CACHE]
    try:
        current = _count_hit(f"{key}{window}", timeout=2 * period)
        previous = int(cache.get(f"{key}{window - 1}", 0))
        elapsed = now - window * period
        if previous * (1 - elapsed / period) + current <= limit:
            _health.succeeded()
            return None
        cache.decr(f"{key}{window}")
    except Exception as exc:  # any backend's failure: the request must pass
        _health.failed(exc)
        return None
    _health.succeeded()
    return _retry_after(limit, period, previous, current - 1, elapsed)


class SettingThrottle(BaseThrottle):
    """A ninja throttle over :func:`refusal`; ``scope`` names the counter (operations sharing a
    scope share one count), by default the setting's name."""

    def __init__(self, setting: str, *, per: Per = "address", scope: str | None = None) -> None:
        self.setting = setting
        self.per = per
        self.scope = scope or setting.lower()
        # Ninja asks ``wait()`` right after a refused ``allow_request()``, on the same thread;
        # that answer is all this shared object keeps, and only per thread.
        self._last = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        self._last.wait = refusal(request, self.setting, self.per, self.scope)
        return self._last.wait is None

    def wait(self) -> float | None:
        return getattr(self._last, "wait", None)


def throttle_view(
    throttle: SettingThrottle,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """``throttle`` for a plain Django view (a page outside the ninja API), answering the same
    429 in the envelope, with ``Retry-After``."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def throttled(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            wait = refusal(request, throttle.setting, throttle.per, throttle.scope)
            if wait is not None:
                return throttled_response(Throttled(retry_after=wait))
            return view(request, *args, **kwargs)

        return throttled

    return decorate


# The public pages that may ask the provider about an order (the checkout return pages, the
# payment link, the dummy gateway's checkout), counted together per address: unthrottled, a loop
# on one pending order could spend the provider's read rate limit and break every customer's
# payment links.
PUBLIC_PAGES = SettingThrottle("PUBLIC_PAGE_THROTTLE", scope="public_pages")
