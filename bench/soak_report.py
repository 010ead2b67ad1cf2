"""The soak's figures: per operation, throughput, latency percentiles and the answers by status
(``5xx outside restart`` is what must stay 0), and the table ``bench/soak.py`` prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from bench.soak_traffic import Sample


def _quantile(sorted_seconds: list[float], q: float) -> float:
    index = min(len(sorted_seconds) - 1, round(q * (len(sorted_seconds) - 1)))
    return sorted_seconds[index]


def _within(sample: Sample, window: tuple[float, float]) -> bool:
    return window[0] <= sample.started <= window[1]


def percentiles(
    samples: Iterable[Sample], seconds: float, restart: tuple[float, float]
) -> dict[str, dict[str, Any]]:
    """Each operation's count, rate, p50/p95/p99 (ms) and statuses; answers started inside the
    ``restart`` window (epoch seconds) are counted apart, so a 5xx there is not hidden and one
    elsewhere is not excused."""
    by_operation: dict[str, list[Sample]] = {}
    for sample in samples:
        by_operation.setdefault(sample.operation, []).append(sample)
    figures = {}
    for operation, taken in sorted(by_operation.items()):
        times = sorted(s.seconds for s in taken)
        inside = [s for s in taken if _within(s, restart)]
        figures[operation] = {
            "count": len(taken),
            "per_s": round(len(taken) / seconds, 2),
            "p50_ms": round(_quantile(times, 0.50) * 1000, 1),
            "p95_ms": round(_quantile(times, 0.95) * 1000, 1),
            "p99_ms": round(_quantile(times, 0.99) * 1000, 1),
            "statuses": dict(sorted(Counter(str(s.status) for s in taken).items())),
            "during restart": dict(sorted(Counter(str(s.status) for s in inside).items())),
            "5xx outside restart": sum(
                1 for s in taken if (s.status >= 500 or s.status == 0) and not _within(s, restart)
            ),
        }
    return figures


def render(result: dict[str, Any]) -> str:
    lines = [
        f"soak {result['when']}: {result['seconds']} s at {result['rate']} ops/s, "
        f"gunicorn {result['config']}, {result['late_starts']} late starts",
        "",
        "| operation | count | per s | p50 ms | p95 ms | p99 ms | answers | during Redis restart |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for name, op in result["operations"].items():
        answers = ", ".join(f"{k}: {v}" for k, v in op["statuses"].items())
        restart = ", ".join(f"{k}: {v}" for k, v in op["during restart"].items()) or "-"
        lines.append(
            f"| {name} | {op['count']} | {op['per_s']} | {op['p50_ms']} | {op['p95_ms']} | "
            f"{op['p99_ms']} | {answers} | {restart} |"
        )
    memory = result["memory_mib"]
    # The table shows when booted, at 1, 2 and 5 minutes, and at the end (the JSON has every
    # minute).
    shown = {"booted", "1 min", "2 min", "5 min", "at the end"}
    memory = {when: sizes for when, sizes in memory.items() if when in shown}
    lines += ["", "| process (RSS, MiB) | " + " | ".join(memory) + " |"]
    lines.append("| --- |" + " ---: |" * len(memory))
    for name in sorted({name for sizes in memory.values() for name in sizes}):
        row = [str(sizes.get(name, "-")) for sizes in memory.values()]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("")
    for number, run in enumerate(result["reconcile"], 1):
        lines.append(f"reconcile {number}: {run}")
    problems = result["invariants"]
    lines.append("invariants: hold" if not problems else "invariants BROKEN:")
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)
