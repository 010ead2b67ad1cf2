"""JWT pairs with marketlink's lifetimes (access 1 h, refresh 7 days by default).

ninja-jwt fixes token lifetimes at import from its own settings; these subclasses read ours live
instead, so a host configures marketlink in one place. ninja-jwt also reads the user model when its
token module is imported, so it is imported lazily, once apps are ready.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from marketlink import conf


@cache
def token_classes() -> tuple[type[Any], type[Any]]:
    """``(AccessToken, RefreshToken)`` classes whose lifetimes come from ``MARKETLINK``."""
    from ninja_jwt.tokens import AccessToken, RefreshToken

    class MarketlinkAccessToken(AccessToken):
        @property
        def lifetime(self) -> timedelta:  # type: ignore[override]
            return timedelta(seconds=conf.get().ACCESS_TOKEN_LIFETIME)

    class MarketlinkRefreshToken(RefreshToken):
        access_token_class = MarketlinkAccessToken

        @property
        def lifetime(self) -> timedelta:  # type: ignore[override]
            return timedelta(seconds=conf.get().REFRESH_TOKEN_LIFETIME)

    return MarketlinkAccessToken, MarketlinkRefreshToken


def user_id_claim() -> str:
    from ninja_jwt.settings import api_settings

    return str(api_settings.USER_ID_CLAIM)
