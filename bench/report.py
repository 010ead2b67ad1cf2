"""What ``bench/run.py`` reports: one outcome per scenario and round, the table, the verdicts."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.loadclient import LoadResult, percentile

TARGET_RATIO = 0.40  # every scenario's rate over the same round's baseline
TARGET_P99_MS = 100.0  # bookings (spread and hot), at the bench's 32 clients
SLOW_STRIPE_TOLERANCE = 0.10  # --slow-stripe: booking at 300 ms within 10% of its rate at 0 ms
# The scenarios judged against the baseline, and what their rate counts.
RATED = {
    "spread": "spread bookings",
    "hot": "hot-variant answers",
    "webhook pi": "webhook deliveries, payment_intent.succeeded",
    "webhook cs": "webhook deliveries, checkout.session.completed",
}


@dataclass
class Outcome:
    config: str
    round: int
    scenario: str
    requests: int
    elapsed_s: float
    ok: int
    ok_per_s: float
    req_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    p99_ok_ms: float
    statuses: dict[str, int]
    server_errors: int
    client_errors: int
    oversold: int
    refused_while_available: int
    consistent: bool
    client_cpu_pct: float
    notes: list[str] = field(default_factory=list)
    ratio: float | None = None
    # What the ratio compares: ok/s, except in the hot storm, where every answer counts.
    rate_per_s: float = 0.0
    paid_once: bool | None = None  # webhooks: every payment check met
    invoices: tuple[int, int] | None = None  # webhooks: invoices sent on the first try, orders
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    stripe_calls: int | None = None  # requests the Stripe stand-in got during the scenario
    connections: list[int] = field(default_factory=list)  # per worker, 1 s into the load
    # Machine CPU not spent by gunicorn's workers, PostgreSQL, Redis, Huey or the client, in %
    # of all cores: other processes (noise) plus kernel work not charged to a process.
    other_cpu_pct: float = 0.0


def summarize(config: str, rnd: int, scenario: str, result: LoadResult) -> Outcome:
    """One scenario's figures from the load client's answers (the checks are the caller's)."""
    responses = result.responses
    statuses = Counter(r.status for r in responses)
    answered = sorted((r.received - r.sent) * 1000 for r in responses if r.status)
    ok = [r for r in responses if 200 <= r.status < 300]
    ok_latency = sorted((r.received - r.sent) * 1000 for r in ok)
    # Successes per second over the time they took: for the hot storm, from the first request
    # to the last successful booking (the refusals after the sell-out do not dilute the rate).
    ok_span = max((r.received for r in ok), default=result.started) - result.started
    return Outcome(
        config=config,
        round=rnd,
        scenario=scenario,
        requests=len(responses),
        elapsed_s=round(result.elapsed, 2),
        ok=len(ok),
        ok_per_s=round(len(ok) / ok_span, 1) if ok_span > 0 else 0.0,
        req_per_s=round(len(responses) / result.elapsed, 1) if result.elapsed else 0.0,
        p50_ms=round(percentile(answered, 0.50), 1),
        p95_ms=round(percentile(answered, 0.95), 1),
        p99_ms=round(percentile(answered, 0.99), 1),
        p99_ok_ms=round(percentile(ok_latency, 0.99), 1),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        server_errors=sum(v for k, v in statuses.items() if k >= 500),
        client_errors=statuses.get(0, 0),
        oversold=0,
        refused_while_available=0,
        consistent=True,
        client_cpu_pct=round(100 * result.client_cpu / result.elapsed, 1) if result.elapsed else 0,
        notes=[f"HTTP {k}: {v[:200]!r}" for k, v in result.samples.items()],
        rate_per_s=round(len(ok) / ok_span, 1) if ok_span > 0 else 0.0,
    )


COLUMNS = [
    ("config", 9),
    ("rnd", 3),
    ("scenario", 12),
    ("requests", 8),
    ("rate/s", 6),
    ("ratio", 5),
    ("p50 ms", 6),
    ("p95 ms", 6),
    ("p99 ms", 6),
    ("2xx", 5),
    ("409", 5),
    ("5xx", 3),
    ("oversold", 8),
    ("refused*", 8),
    ("paid once", 9),
    ("invoices", 8),
    ("cpu ms/req app+pg+redis+huey", 28),
    ("client", 6),
    ("other", 5),
    ("conns/worker", 12),
]


def _row(o: Outcome) -> list[str]:
    two = sum(v for k, v in o.statuses.items() if k.startswith("2"))
    return [
        o.config,
        str(o.round),
        o.scenario,
        str(o.requests),
        f"{o.rate_per_s:.0f}",
        "-" if o.ratio is None else f"{o.ratio:.0%}",
        f"{o.p50_ms:.1f}",
        f"{o.p95_ms:.1f}",
        f"{o.p99_ms:.1f}",
        str(two),
        str(o.statuses.get("409", 0)),
        str(o.server_errors + o.client_errors),
        str(o.oversold),
        str(o.refused_while_available),
        "-" if o.paid_once is None else ("yes" if o.paid_once else "NO"),
        "-" if o.invoices is None else "/".join(map(str, o.invoices)),
        "+".join(f"{v:.2f}" for v in o.cpu_ms_per_request.values()),
        f"{o.client_cpu_pct:.0f}%",
        f"{o.other_cpu_pct:.0f}%",
        "/".join(str(n) for n in o.connections) or "-",
    ]


def table(outcomes: list[Outcome]) -> str:
    lines = [
        "| " + " | ".join(name.rjust(width) for name, width in COLUMNS) + " |",
        "|" + "|".join("-" * (width + 2) for _, width in COLUMNS) + "|",
    ]
    for outcome in outcomes:
        cells = [c.rjust(w) for c, (_, w) in zip(_row(outcome), COLUMNS, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LEGEND = (
    "rate/s: 2xx answers per second (hot: every answer, 201 and 409, from the first request to "
    "the last answer;\nwebhook: deliveries, duplicates included); ratio: rate over the same "
    "round's baseline; 5xx: server errors + failed connections;\nrefused*: 409 while stock "
    "remained; paid once / invoices: the webhook scenario's exactly-once checks, invoices sent "
    "by the\nHuey consumer on the first try / orders; cpu ms/req: CPU per request of the "
    "gunicorn workers, PostgreSQL, Redis and the Huey consumer;\nclient: the runner's CPU (load "
    "client, Stripe stand-in), % of one core; other: the machine's CPU spent elsewhere, % of "
    "all cores;\nconns/worker: the client's connections each gunicorn worker held 1 s in; "
    "baseline open / spread open: an open loop at half the round's\nbaseline rate (requests "
    "started on time whatever the answers, latency from each one's due time); spread steady: "
    "the same at half\nthe round's spread rate"
)


def _server_cpu(outcome: Outcome) -> float:
    return sum(outcome.cpu_ms_per_request.values())


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


# The open loops: scenario -> (what it is, the closed-loop scenario whose rate it offers half of).
OPEN_LOOPS = {
    "baseline open": ("bare view", "baseline"),
    "spread open": ("bookings", "baseline"),
    "spread steady": ("bookings", "spread"),
}


def _open_loop(mine: list[Outcome]) -> list[str]:
    """The open loops' medians over rounds, beside the closed loop's (reported, no target)."""
    rates = {(o.scenario, o.round): o.rate_per_s for o in mine}
    lines = []
    for scenario, (what, reference) in OPEN_LOOPS.items():
        runs = [o for o in mine if o.scenario == scenario and rates.get((reference, o.round))]
        if not runs:
            continue
        offered = [rates[reference, o.round] / 2 for o in runs]
        kept = _median([o.rate_per_s / rate for o, rate in zip(runs, offered, strict=True)])
        lines.append(
            f"  open loop ({scenario}): {what} at {_median(offered):.0f}/s, half the {reference}'s "
            f"rate: p50 {_median([o.p50_ms for o in runs]):.0f} / p95 "
            f"{_median([o.p95_ms for o in runs]):.0f} / p99 {_median([o.p99_ms for o in runs]):.0f}"
            f" ms, {kept:.0%} of the offered rate served"
        )
    return lines


def verdict(outcomes: list[Outcome], memory: dict[str, list[list[float]]]) -> list[str]:
    """The issue's targets, judged on the medians over rounds of each configuration."""
    lines = []
    for config in dict.fromkeys(o.config for o in outcomes):
        mine = [o for o in outcomes if o.config == config]

        def med(
            scenario: str, value: Callable[[Outcome], float], mine: list[Outcome] = mine
        ) -> float:
            return _median([value(o) for o in mine if o.scenario == scenario])

        def cpu(scenario: str) -> float:
            return med(scenario, _server_cpu)

        def slow_ratio(mine: list[Outcome] = mine) -> float:
            """Median over rounds of (spread at 300 ms) / (spread at 0 ms) of the same round."""
            rates = {(o.round, o.scenario): o.rate_per_s for o in mine}
            return _median(
                [
                    rates[r, "spread 300ms"] / rates[r, "spread"]
                    for r, s in rates
                    if s == "spread" and rates.get((r, "spread 300ms")) and rates[r, s]
                ]
            )

        lines.append(f"{config}: median over {len({o.round for o in mine})} round(s)")
        if config.endswith("eager"):
            calls = [(o.stripe_calls or 0) / max(1, o.ok) for o in mine if o.scenario != "baseline"]
            lines.append(
                "  eager payment mode, for contrast (no target): bookings "
                f"{med('spread', lambda o: o.rate_per_s):.0f}/s with Stripe at 0 ms, "
                f"{med('spread 300ms', lambda o: o.rate_per_s):.0f}/s at 300 ms "
                f"({slow_ratio():.0%}); {max(calls, default=0):.2f} Stripe requests per booking"
            )
            lines.append(
                f"  [{'met' if all(o.consistent for o in mine) else 'MISSED'}] database "
                "consistent, a stored session for every booking"
            )
            continue
        base = cpu("baseline")
        lines.append(
            "  server CPU per request (app+PostgreSQL+Redis+Huey), and baseline / it (the rate "
            f"ratio a CPU-bound machine would give): baseline {base:.2f} ms; "
            + "; ".join(
                f"{scenario} {cpu(scenario):.2f} ms = {base / max(cpu(scenario), 1e-9):.0%}"
                for scenario in RATED
            )
        )
        checks = []
        for scenario, what in RATED.items():
            ratio = med(scenario, lambda o: o.ratio or 0.0)
            checks.append(
                (
                    f"{what} >= {TARGET_RATIO:.0%} of baseline: {ratio:.0%} "
                    f"({med(scenario, lambda o: o.rate_per_s):.0f}/s against "
                    f"{med('baseline', lambda o: o.rate_per_s):.0f}/s)",
                    ratio >= TARGET_RATIO,
                )
            )
        lines += _open_loop(mine)
        spread_p99, hot_p99 = med("spread", lambda o: o.p99_ms), med("hot", lambda o: o.p99_ms)
        checks.append(
            (
                f"booking p99 <= {TARGET_P99_MS:.0f} ms: spread {spread_p99:.0f} ms, "
                f"hot {hot_p99:.0f} ms",
                max(spread_p99, hot_p99) <= TARGET_P99_MS,
            )
        )
        if any(o.scenario == "spread 300ms" for o in mine):
            slow = [o for o in mine if o.scenario == "spread 300ms"]
            checks.append(
                (
                    f"bookings with Stripe at 300 ms within {SLOW_STRIPE_TOLERANCE:.0%} of 0 ms: "
                    f"{slow_ratio():.0%}, {sum(o.stripe_calls or 0 for o in slow)} Stripe "
                    "requests while booking",
                    abs(slow_ratio() - 1) <= SLOW_STRIPE_TOLERANCE
                    and not any(o.stripe_calls for o in slow),
                )
            )
        hooks = [o for o in mine if o.scenario in ("webhook pi", "webhook cs")]
        checks += [
            (f"0 oversold: {sum(o.oversold for o in mine)}", not any(o.oversold for o in mine)),
            (
                f"0 errors: {sum(o.server_errors for o in mine)} 5xx, "
                f"{sum(o.client_errors for o in mine)} failed connections",
                not any(o.server_errors or o.client_errors for o in mine),
            ),
            (
                "webhooks: every order paid exactly once, every event processed once, every "
                f"delivery 2xx ({sum(o.ok for o in hooks)}/{sum(o.requests for o in hooks)})",
                bool(hooks) and all(o.paid_once for o in hooks),
            ),
            (
                "one invoice per order, sent by the consumer on the first try: "
                + ", ".join(f"{o.invoices[0]}/{o.invoices[1]}" for o in hooks if o.invoices),
                bool(hooks) and all(o.invoices and o.invoices[0] == o.invoices[1] for o in hooks),
            ),
            (
                f"0 refused while stock remained: {sum(o.refused_while_available for o in mine)}",
                not any(o.refused_while_available for o in mine),
            ),
            ("database consistent after every scenario", all(o.consistent for o in mine)),
        ]
        rounds = memory.get(config, [])
        if rounds:
            checks.append(
                (
                    "worker RSS MiB after each round: "
                    + " -> ".join("/".join(f"{m:.1f}" for m in r) for r in rounds),
                    len(rounds) < 2 or max(rounds[-1]) - max(rounds[0]) < 5,
                )
            )
        lines += [f"  [{'met' if good else 'MISSED'}] {text}" for text, good in checks]
    return lines
