"""Per-address throttles whose rates are read from ``MARKETLINK`` on every request.

Ninja fixes a throttle's rate when the route is declared; reading it live lets a host (or its
tests, via ``override_settings``) change the rate without re-importing the routers. Counts live in
the default cache, so several web workers share them when that cache is Redis.

The client address is ``REMOTE_ADDR``. ``X-Forwarded-For`` is believed only when the host says how
many proxies stand in front of it (``NINJA_NUM_PROXIES``); otherwise any client could send a new
"address" with every login attempt and never be throttled.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.throttling import AnonRateThrottle

from marketlink import conf


class SettingRateThrottle(AnonRateThrottle):
    def __init__(self, setting: str) -> None:
        self.setting = setting
        self.scope = f"marketlink_{setting.lower()}"
        super().__init__(rate="1/min")  # a placeholder: allow_request reads the real rate

    def get_ident(self, request: HttpRequest) -> str | None:
        from ninja.conf import settings as ninja_settings

        if ninja_settings.NUM_PROXIES is None:
            return request.META.get("REMOTE_ADDR")
        return super().get_ident(request)

    def allow_request(self, request: HttpRequest) -> bool:
        self.rate = getattr(conf.get(), self.setting)
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request)
