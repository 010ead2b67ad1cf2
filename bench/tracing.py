"""``run.py --trace-lock``: time every booking's variant lock in the gunicorn workers.

Wraps ``marketlink.orders.stock.variant_lock`` (diagnostics only, never in a real site) and
appends one line per booking to ``<directory>/lock-<pid>.tsv``: variant id, then the wall-clock
times when the booking asked for the lock, got it, finished its transaction, and had released the
lock. With the Redis lock, the gap between one holder's finish and the next holder's start is the
hand-off.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def install(directory: str) -> None:
    from marketlink.orders import stock

    original = stock.variant_lock
    path = Path(directory) / f"lock-{os.getpid()}.tsv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    @contextmanager
    def traced(variant_id: uuid.UUID, **options: Any) -> Iterator[None]:
        asked = time.time()
        with original(variant_id, **options):
            got = time.time()
            try:
                yield
            finally:
                done = time.time()
        released = time.time()
        os.write(fd, f"{variant_id}\t{asked}\t{got}\t{done}\t{released}\n".encode())

    stock.variant_lock = traced


def read(directory: Path, variant_id: Any) -> list[tuple[float, float, float, float]]:
    """The traced bookings of one variant, ordered by when they got the lock."""
    key = str(variant_id)
    rows = []
    for path in directory.glob("lock-*.tsv"):
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if fields[0] == key:
                asked, got, done, released = (float(x) for x in fields[1:])
                rows.append((asked, got, done, released))
    return sorted(rows, key=lambda row: row[1])
