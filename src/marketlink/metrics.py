"""Prometheus metrics, when the host installs the ``marketlink[metrics]`` extra.

Without ``prometheus_client`` every recording function here is a no-op that costs one global
read: marketlink never requires the extra, and the booking and webhook paths stay as fast as
before. With it, the metrics live in ``prometheus_client``'s default registry, so a host's own
metrics and ours are exported together; :func:`metrics_view` is a view the host mounts, and it
reads the multiprocess directory when ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several
workers; see ``docs/observability.md``).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.http import HttpRequest, HttpResponse

__all__ = [
    "booking_answered",
    "lock_waited",
    "metrics_view",
    "task_failed",
    "webhook_answered",
]

# How long bookings wait for a busy lock: LOCK_WAIT is 5 s by default.
_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _Metrics:
    def __init__(self, prometheus: Any) -> None:
        self.bookings = prometheus.Counter(
            "marketlink_bookings_total",
            "Booking attempts by outcome: taken (201) or sold_out (409).",
            ["outcome"],
        )
        self.lock_waits = prometheus.Histogram(
            "marketlink_lock_wait_seconds",
            "Seconds a booking waited for a busy variant lock, by outcome: acquired or "
            "timed_out (503).",
            ["outcome"],
            buckets=_WAIT_BUCKETS,
        )
        self.webhooks = prometheus.Counter(
            "marketlink_webhook_events_total",
            "Webhook deliveries by outcome: processed, ignored, duplicate, failed (flagged), "
            "transient (503, retried) or invalid_signature (400).",
            ["outcome"],
        )
        self.task_failures = prometheus.Counter(
            "marketlink_task_failures_total",
            "Side effects that failed (outbox entries, by kind in the task label), and whether "
            "it gave up (final).",
            ["task", "final"],
        )


_UNSET: Any = object()
_metrics: _Metrics | None = _UNSET
# Two threads' first bookings must not both register the metrics (a duplicate is an error).
_creating = threading.Lock()


def _get() -> _Metrics | None:
    """The metrics, created on first use; None when prometheus_client is not installed."""
    global _metrics
    if _metrics is _UNSET:
        with _creating:
            if _metrics is _UNSET:
                try:
                    import prometheus_client
                except ImportError:
                    _metrics = None
                else:
                    _metrics = _Metrics(prometheus_client)
    return _metrics


def booking_answered(outcome: str) -> None:
    if (metrics := _get()) is not None:
        metrics.bookings.labels(outcome).inc()


def lock_waited(outcome: str, seconds: float) -> None:
    if (metrics := _get()) is not None:
        metrics.lock_waits.labels(outcome).observe(seconds)


def webhook_answered(outcome: str) -> None:
    if (metrics := _get()) is not None:
        metrics.webhooks.labels(outcome).inc()


def task_failed(task: str, *, final: bool) -> None:
    if (metrics := _get()) is not None:
        metrics.task_failures.labels(task, "true" if final else "false").inc()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format of every metric in this process (or, with
    ``PROMETHEUS_MULTIPROC_DIR``, in every worker). Mount it where only the scraper reaches."""
    if _get() is None:
        return HttpResponse(
            "prometheus_client is not installed: pip install 'marketlink[metrics]'\n",
            status=501,
            content_type="text/plain; charset=utf-8",
        )
    import prometheus_client
    from prometheus_client import multiprocess

    registry: Any = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return HttpResponse(
        prometheus_client.generate_latest(registry),
        content_type=prometheus_client.CONTENT_TYPE_LATEST,
    )
