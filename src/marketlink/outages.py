"""Remembering that a store (the lock's Redis, the throttle cache) is unreachable.

Code that can carry on without a store (bookings on database locks alone, requests unthrottled)
asks :meth:`Outage.usable` before using it: after a failure the store is left alone for a few
seconds, so requests do not each wait on a failing connection, and the outage and the recovery
are each logged once instead of once per request.
"""

from __future__ import annotations

import logging
import threading
import time


class Outage:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        event: str,
        went_down: str,
        came_back: str,
        retry_after: float = 5.0,
    ) -> None:
        """``went_down`` is logged with the exception as ``%s``, ``came_back`` as it is, both as
        warnings of the user's ``logger``, with the structured-log events ``<event>.down`` and
        ``<event>.up``."""
        self._lock = threading.Lock()
        self.logger = logger
        self.event = event
        self.went_down = went_down
        self.came_back = came_back
        self.retry_after = retry_after
        self.down_until = 0.0
        self.reported = False

    def usable(self) -> bool:
        return time.monotonic() >= self.down_until

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self.down_until = time.monotonic() + self.retry_after
            if not self.reported:
                self.reported = True
                self.logger.warning(self.went_down, exc, extra={"event": f"{self.event}.down"})

    def succeeded(self) -> None:
        if self.reported:
            with self._lock:
                if self.reported:
                    self.reported = False
                    self.logger.warning(self.came_back, extra={"event": f"{self.event}.up"})
