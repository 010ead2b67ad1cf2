"""What one ``marketlink doctor`` check found: shared by the command and its checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail", "unreachable"]
STATUSES: tuple[Status, ...] = ("ok", "warn", "fail", "unreachable")


@dataclass(frozen=True)
class Finding:
    """``warn``: a person should look; ``fail``: broken; ``unreachable``: a dependency did not
    answer. ``fix`` is one sentence saying what to do, for anything not ok."""

    check: str
    status: Status
    detail: str
    fix: str | None = None


Check = Callable[[], Finding]
