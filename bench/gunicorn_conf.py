"""The gunicorn settings every benchmark server shares (``--config``), as a production site's
``gunicorn.conf.py`` would carry them; ``bench/README.md`` says why.

A worker imports the whole site (the URLconf imports every API module) and then only adds to its
heap what requests leave behind. Python's collector still walks the imported objects at each
full (generation 2) collection: about 60-70 ms of CPU on this site's ~120,000-226,000 tracked
objects, during which the worker serves nobody, and 190-450 ms on a loaded two-core machine.
Freezing the heap once the site is imported moves those objects out of the collector's reach
(``gc.freeze``): a full collection then walks only what requests made, about 10-15 ms.
"""

from __future__ import annotations

import gc
from typing import Any


def post_worker_init(worker: Any) -> None:
    """Import the site's views now (the URLconf), not on the first request, then freeze the heap
    so that full collections skip it."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018  (resolving imports every API module)
    gc.collect()
    gc.freeze()
