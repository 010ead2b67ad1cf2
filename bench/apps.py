import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    name = "bench"
    label = "bench"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        directory = os.environ.get("BENCH_TRACE_LOCK")
        if directory:
            from bench import tracing

            tracing.install(directory)
