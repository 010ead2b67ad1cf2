"""The scenarios of ``bench/run.py``, run against one gunicorn, each checked in the database."""

from __future__ import annotations

import itertools
import json
import os
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench import tracing, webhooks
from bench.loadclient import LoadResult, build_request, percentile, run_load, run_open_loop
from bench.phases import PhaseSwitcher
from bench.processes import CpuMeter
from bench.report import Outcome, summarize
from bench.stack import (
    CONNECT_STAGGER_S,
    HOST,
    HOT_STOCK,
    INVOICE_WAIT_S,
    SPREAD_STOCK,
    SPREAD_VARIANTS,
    WEBHOOK_COPIES,
    WEBHOOK_KINDS,
    new_variants,
    paid_checkouts,
)


class Bench:
    """The scenarios against one server: each runs a load, then checks the database."""

    def __init__(
        self, port: int, seed: dict[str, Any], duration: float, meter: CpuMeter, standin: Any
    ) -> None:
        self.port, self.duration, self.meter, self.standin = port, duration, meter, standin
        self.tokens, self.vendor, self.customers = seed["tokens"], seed["vendor"], seed["customers"]
        self.trace_dir: Path | None = None
        self.last_cpu: dict[str, float] = {}
        self.last_other = 0.0
        self.last_connections: list[int] = []
        self.host_header = f"{HOST}:{port}"
        self.rng = random.Random(1)
        # Several servers (``bench/hosts.py``): the load's connections spread over them.
        self.targets: list[tuple[str, int]] | None = None

    def _post(self, path: str, token: str, body: bytes) -> bytes:
        return build_request(
            "POST",
            path,
            self.host_header,
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    def _bodies(self, variant_ids: list[Any]) -> list[bytes]:
        return [json.dumps({"variant_id": str(v)}).encode() for v in variant_ids]

    def _connections_later(self, delay: float = 1.0) -> threading.Timer:
        """Read how the load's connections split between the workers, ``delay`` seconds in."""
        timer = threading.Timer(
            delay,
            lambda: setattr(self, "last_connections", self.meter.server.connections_per_worker()),
        )
        self.last_connections = []
        timer.start()
        return timer

    def _load(
        self,
        factory: Any,
        *,
        total: int | None = None,
        rendezvous: Any = None,
        open_rate: float | None = None,
    ) -> LoadResult:
        """The closed loop of ``concurrency`` connections, or with ``open_rate`` an open loop
        (``open_rate`` requests a second, whatever the answers)."""
        before, busy_before = self.meter.snapshot(), self.meter.machine_busy()
        sampler = self._connections_later()
        if open_rate:
            result = run_open_loop(HOST, self.port, factory, rate=open_rate, duration=self.duration)
        else:
            duration = None if total else self.duration
            result = self._closed_loop(
                factory, total=total, duration=duration, rendezvous=rendezvous
            )
        sampler.cancel()
        sampler.join()
        after, busy_after = self.meter.snapshot(), self.meter.machine_busy()
        count = max(1, len(result.responses))
        self.last_cpu = {k: round(1000 * (after[k] - before[k]) / count, 2) for k in before}
        ours = sum(after.values()) - sum(before.values()) + result.client_cpu
        capacity = result.elapsed * (os.cpu_count() or 1)
        self.last_other = round(100 * (busy_after - busy_before - ours) / capacity, 1)
        return result

    def _closed_loop(self, factory: Any, **options: Any) -> LoadResult:
        return run_load(
            HOST,
            self.port,
            factory,
            concurrency=self.concurrency,
            stagger=CONNECT_STAGGER_S,
            targets=self.targets,
            **options,
        )

    def _summarize(self, config: str, rnd: int, scenario: str, result: LoadResult) -> Outcome:
        outcome = summarize(config, rnd, scenario, result)
        outcome.cpu_ms_per_request = self.last_cpu
        outcome.other_cpu_pct = self.last_other
        outcome.connections = self.last_connections
        return outcome

    concurrency = 32

    def warm_up(self, seconds: float, with_webhooks: bool = True) -> None:
        """Open every worker's connections and fill its caches before anything is measured."""
        variants = new_variants(self.vendor, "warm-up", 50, SPREAD_STOCK)
        bodies = self._bodies([v.id for v in variants])
        tokens = self.tokens
        for path in ("/bench/insert/", "/api/orders/"):
            run_load(
                HOST,
                self.port,
                lambda n, path=path: (
                    self._post(path, tokens[n % len(tokens)], bodies[n % len(bodies)]),
                    None,
                ),
                concurrency=self.concurrency,
                stagger=CONNECT_STAGGER_S,
                duration=seconds / 2,
                targets=self.targets,
            )
        if not with_webhooks:
            return
        # The webhook path too (the workers import the stripe SDK on the first event), and the
        # consumer's invoices.
        orders, events = self.paid_checkouts("warm-up", 2 * self.concurrency)
        slots = webhooks.deliveries(events, self.standin.sign, self.host_header, self.rng)
        run_load(
            HOST,
            self.port,
            lambda n: slots[n],
            concurrency=self.concurrency,
            stagger=CONNECT_STAGGER_S,
            total=len(slots),
            rendezvous=webhooks.rendezvous,
            targets=self.targets,
        )
        webhooks.wait_for_invoices([order.id for order in orders], INVOICE_WAIT_S)

    def baseline(self, config: str, rnd: int, open_rate: float | None = None) -> Outcome:
        """The bare view; ``open_rate``: as an open loop at that rate (``baseline open``)."""
        from bench.models import Hit

        before = Hit.objects.count()
        body = json.dumps({"variant_id": "00000000-0000-0000-0000-000000000000"}).encode()
        requests = [self._post("/bench/insert/", t, body) for t in self.tokens]
        result = self._load(lambda n: (requests[n % len(requests)], None), open_rate=open_rate)
        outcome = self._summarize(config, rnd, "baseline open" if open_rate else "baseline", result)
        written = Hit.objects.count() - before
        if written != outcome.ok:
            outcome.consistent = False
            outcome.notes.append(f"{outcome.ok} answered 201 but {written} rows were written")
        return outcome

    def spread(
        self,
        config: str,
        rnd: int,
        phases: dict[str, float] | None = None,
        open_rate: float | None = None,
    ) -> list[Outcome]:
        """Bookings without contention, one outcome per entry of ``phases`` (scenario name ->
        the Stripe stand-in's latency in seconds; default: ``spread`` at 0). With several, one
        load of that many times ``duration`` cycles through them every ``PHASE_S`` over the same
        connections, and each scenario's figures come from its own phases (answers counted when
        they arrive, CPU read at each switch): successive runs differ by 10-20% here (drift,
        and how the kernel spreads the 32 connections over the workers), interleaved phases do
        not. In payment link mode no booking may call Stripe; in eager mode each one opens a
        session. ``open_rate`` (one phase only): an open loop at that rate."""
        from django.db.models import Count

        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import RepairOrder

        phases = phases or {"spread": 0.0}
        names = list(phases)
        variants = new_variants(
            self.vendor, f"{names[-1]} {config} r{rnd}", SPREAD_VARIANTS, SPREAD_STOCK
        )
        ids = [v.id for v in variants]
        bodies = self._bodies(ids)
        tokens, rng = self.tokens, self.rng

        def factory(n: int) -> tuple[bytes, int]:
            index = rng.randrange(len(bodies))
            return self._post("/api/orders/", tokens[n % len(tokens)], bodies[index]), index

        stripe_calls = len(self.standin.requests_log)
        if len(phases) == 1:
            self.standin.latency = phases[names[0]]
            try:
                result = self._load(factory, open_rate=open_rate)
            finally:
                self.standin.latency = 0.0
            outcomes = [self._summarize(config, rnd, names[0], result)]
            subsets = [result.responses]
        else:
            # Which latency opens the cycle alternates from round to round, so that neither
            # always runs second.
            shift = (rnd - 1) % len(names)
            names = names[shift:] + names[:shift]
            switcher = PhaseSwitcher(
                self.standin, self.meter, [phases[n] for n in names], len(phases) * self.duration
            )
            sampler = self._connections_later()
            with switcher:
                result = self._closed_loop(factory, duration=switcher.load_seconds)
            sampler.join()
            parts, outside = switcher.split(result)
            outcomes = [
                switcher.summarize(config, rnd, name, part)
                for name, part in zip(names, parts, strict=True)
            ]
            for outcome in outcomes:
                outcome.connections = self.last_connections
            # The lead-in's and the drain's answers are checked with the first phase's.
            subsets = [part.result.responses for part in parts]
            subsets[0] = subsets[0] + outside
            outcomes[0].notes.append(
                f"+ {len(outside)} answers before the first phase or after the last, not timed"
            )
            order = [names.index(name) for name in phases]  # back to the caller's order
            outcomes, subsets = [outcomes[i] for i in order], [subsets[i] for i in order]
        calls = self.standin.requests_log[stripe_calls:]
        sold = dict(
            RepairOrder.objects.filter(variant_id__in=ids)
            .values_list("variant_id")
            .annotate(n=Count("id"))
        )
        stock = dict(ServiceVariant.objects.filter(id__in=ids).values_list("id", "stock"))
        ok = sum(1 for part in subsets for r in part if 200 <= r.status < 300)
        problems = []
        if min(stock.values()) < 0:
            problems.append("negative stock")
        if any(stock[v] != SPREAD_STOCK - sold.get(v, 0) for v in ids):
            problems.append("stock + orders != initial stock")
        if sum(sold.values()) != ok:
            problems.append(f"{ok} answered 2xx but {sum(sold.values())} orders exist")
        eager = os.environ.get("BENCH_LINK_MODE") == "eager"
        created = sum(1 for c in calls if c.method == "POST" and c.path == "/v1/checkout/sessions")
        if not eager and calls:
            problems.append(f"booking called Stripe {len(calls)} times in payment link mode")
        if eager:
            opened = RepairOrder.objects.filter(
                variant_id__in=ids, checkout_session_id__isnull=False
            ).count()
            if opened != ok or created < ok:
                problems.append(f"{ok} eager bookings but {opened} sessions stored")
        for outcome, responses in zip(outcomes, subsets, strict=True):
            outcome.oversold = sum(max(0, sold.get(v, 0) - SPREAD_STOCK) for v in ids)
            outcome.refused_while_available = sum(
                1 for r in responses if r.status == 409 and stock[ids[r.tag]] > 0
            )
            outcome.stripe_calls = len(calls)
            outcome.consistent = not problems
            outcome.notes.append(
                f"Stripe stand-in at {', '.join(f'{1000 * v:.0f}' for v in phases.values())} "
                f"ms: {len(calls)} requests during the run ({created} session creations for "
                f"{ok} bookings)"
            )
            outcome.notes += problems
        return outcomes

    def paid_checkouts(self, label: str, count: int) -> tuple[list[Any], list[dict[str, Any]]]:
        return paid_checkouts(
            self.standin, self.vendor, self.customers, label, count, f"http://{self.host_header}/"
        )

    def webhook(self, config: str, rnd: int, scenario: str, count: int) -> Outcome:
        """``count`` orders paid at the stand-in, then the ``WEBHOOK_KINDS[scenario]`` event of
        each delivered twice (``bench/webhooks.py``); checked once the Huey consumer has sent
        every invoice."""
        started = time.monotonic()
        orders, events = self.paid_checkouts(f"{scenario} {config} r{rnd}", count)
        events = [event for event in events if event["type"] == WEBHOOK_KINDS[scenario]]
        prepared = time.monotonic() - started
        slots = webhooks.deliveries(events, self.standin.sign, self.host_header, self.rng)
        result = self._load(lambda n: slots[n], total=len(slots), rendezvous=webhooks.rendezvous)
        outcome = self._summarize(config, rnd, scenario, result)
        drained = webhooks.wait_for_invoices([order.id for order in orders], INVOICE_WAIT_S)
        problems = webhooks.payment_problems(orders, events, SPREAD_STOCK)
        expected = WEBHOOK_COPIES * len(events)
        if outcome.ok != expected or len(result.responses) != expected:
            problems.append(f"{outcome.ok} of {expected} deliveries answered 2xx")
        if len(events) != len(orders):
            problems.append(f"{len(events)} {WEBHOOK_KINDS[scenario]} events for {count} orders")
        outcome.paid_once = not problems
        sent, unsent = webhooks.invoice_problems(orders)
        outcome.invoices = (sent, len(orders))
        outcome.consistent = not problems and not unsent
        outcome.notes += problems + unsent
        concurrent, sequential = webhooks.overlap(result)
        outcome.notes.append(
            f"{len(orders)} orders paid at the stand-in in {prepared:.1f} s; {len(events)} "
            f"{WEBHOOK_KINDS[scenario]} x {WEBHOOK_COPIES} = {expected} deliveries; copies in "
            f"flight together: {concurrent:.0%} of the concurrent pairs; second copy after the "
            f"first's answer: {sequential:.0%} of the sequential pairs; every invoice sent (its "
            f"outbox entry done) {drained:.1f} s after the last answer"
        )
        return outcome

    def hot(self, config: str, rnd: int, storms: int) -> Outcome:
        """``storms`` rushes back to back in one load, each of ``CUSTOMERS`` buyers (one request
        each) for a fresh variant of ``HOT_STOCK`` units: the variant lock serialises each rush
        and three buyers in four find it sold out. The rate is every answer per second: a
        refusal is an answer a buyer waits for too."""
        from django.db.models import Count, Max

        from marketlink.catalog.models import ServiceVariant
        from marketlink.orders.models import RepairOrder

        variants = new_variants(self.vendor, f"hot {config} r{rnd}", storms, HOT_STOCK)
        ids = [variant.id for variant in variants]
        requests = [
            [self._post("/api/orders/", token, body) for token in self.tokens]
            for body in self._bodies(ids)
        ]
        buyers = len(self.tokens)
        result = self._load(
            lambda n: (requests[n // buyers][n % buyers], n // buyers), total=storms * buyers
        )
        outcome = self._summarize(config, rnd, "hot", result)
        outcome.rate_per_s = outcome.req_per_s
        orders = RepairOrder.objects.filter(variant_id__in=ids).values_list("variant_id")
        sold = dict(orders.annotate(n=Count("id")))
        last = dict(orders.annotate(last=Max("created_at")))
        stock = dict(ServiceVariant.objects.filter(id__in=ids).values_list("id", "stock"))
        outcome.oversold = sum(max(0, sold.get(v, 0) - HOT_STOCK) for v in ids)
        # A variant's stock reached 0 when its last order committed, after that order's
        # created_at: a 409 that reached the client before that instant was decided while a unit
        # was left. One sent before it but answered after it was decided around the sell-out
        # (the server may have seen the last unit taken): not counted, reported for scale.
        around = 0
        for response in result.responses:
            if response.status != 409:
                continue
            variant = ids[response.tag]
            if stock[variant] > 0 or variant not in last:
                outcome.refused_while_available += 1
                continue
            sold_out_at = last[variant].timestamp() - result.wall_offset
            if response.received < sold_out_at:
                outcome.refused_while_available += 1
            elif response.sent < sold_out_at:
                around += 1
        problems = []
        if min(stock.values()) < 0:
            problems.append("negative stock")
        if any(stock[v] != HOT_STOCK - sold.get(v, 0) for v in ids):
            problems.append("stock + orders != initial stock")
        if sum(sold.values()) != outcome.ok:
            problems.append(f"{outcome.ok} answered 2xx but {sum(sold.values())} orders exist")
        outcome.consistent = not problems
        outcome.notes += problems
        outcome.notes.append(
            f"{storms} storms of {buyers} buyers for {HOT_STOCK} units: sold "
            f"{sum(sold.values())}, left {sum(stock.values())}; 409s in flight across a "
            f"sell-out (not counted): {around}"
        )
        if self.trace_dir is not None:
            outcome.notes.append(_lock_summary(tracing.read(self.trace_dir, ids[-1])))
        return outcome


def _lock_summary(rows: list[tuple[float, float, float, float]]) -> str:
    """Wait, hold and hand-off of the hot variant's lock, from ``--trace-lock``."""
    if len(rows) < 2:
        return "lock trace: too few bookings"
    waits = sorted(1000 * (got - asked) for asked, got, _, _ in rows)
    holds = sorted(1000 * (done - got) for _, got, done, _ in rows)
    releases = [1000 * (released - done) for _, _, done, released in rows]
    handoffs = [1000 * (b[1] - a[2]) for a, b in itertools.pairwise(rows)]
    cycle = 1000 * (rows[-1][1] - rows[0][1]) / (len(rows) - 1)
    return (
        f"lock trace, {len(rows)} bookings: wait p50 {percentile(waits, 0.5):.1f} / "
        f"p99 {percentile(waits, 0.99):.1f} ms; held (transaction) mean "
        f"{statistics.fmean(holds):.2f} / p99 {percentile(holds, 0.99):.2f} ms; release "
        f"{statistics.fmean(releases):.2f} ms; one booking every {cycle:.2f} ms, of which "
        f"{statistics.median(handoffs):.2f} ms (median) between one holder's commit and the "
        "next holder's start"
    )
