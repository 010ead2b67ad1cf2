"""Structured logs: one JSON object per line, for hosts whose log pipeline reads JSON.

marketlink logs with stable event names and ids as ``extra`` fields (``event``, ``order_id``,
``variant_id``, ``event_id``, ...; see ``docs/observability.md``), so a plain text handler shows
the readable message and this formatter shows every field. A host opts in by naming it in its
``LOGGING``::

    "formatters": {"json": {"()": "marketlink.logs.JsonFormatter"}}

Fields whose *name* says they hold a secret are written as ``[redacted]`` whatever logged them
(a host's own ``extra={"password": ...}`` included): the call sites never pass one, and this is
the second line of defence, not the first.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter"]

# Everything a LogRecord carries by itself; the rest came in through ``extra``.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_NAME = re.compile(r"secret|token|password|authori[sz]ation|api_?key|card|cvc", re.I)
REDACTED = "[redacted]"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "event", "message", ...extra fields, "exception"?}``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None),
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name in _RECORD_ATTRIBUTES or name in entry or name.startswith("_"):
                continue
            entry[name] = REDACTED if _SECRET_NAME.search(name) else value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
