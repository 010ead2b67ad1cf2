"""The one way the suite bounds a stateful fuzz run: deterministic (the same steps every run,
no example database to replay from) and without deadlines, which a shared CI machine would
make flaky."""

from __future__ import annotations

import hypothesis


def bounded_machine(*, max_examples: int, steps: int) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
