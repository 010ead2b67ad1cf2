"""Fixtures of the payouts tests: payouts switched on (a 10 % fee)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def payouts_on(settings: Any) -> None:
    current = getattr(settings, "MARKETLINK", {})
    settings.MARKETLINK = {**current, "PAYOUTS_ENABLED": True, "PLATFORM_FEE_PERCENT": "10"}
