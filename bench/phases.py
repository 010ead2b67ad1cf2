"""``--slow-stripe``: one booking load split into phases at alternating Stripe latencies."""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench.loadclient import LoadResult
from bench.processes import CpuMeter
from bench.report import Outcome, summarize

PHASE_S = 0.5  # the length of one phase when a scenario alternates the Stripe latency
LEAD_S = 0.5  # not measured at the start of an interleaved load


@dataclass
class Phase:
    """The part of an interleaved load that ran at one latency."""

    result: LoadResult
    seconds: float
    cpu: dict[str, float]  # CPU seconds of app, postgres, redis
    busy: float  # the machine's busy CPU seconds


class PhaseSwitcher:
    """Sets the Stripe stand-in's latency to each of ``latencies`` in turn, ``phases`` times
    ``PHASE_S`` seconds in all, from a thread, while a load runs; reads the CPU counters at each
    switch, so that the load's answers (by arrival time) and CPU can be split by latency. The
    first ``LEAD_S`` seconds (connections opening, the first answers) and the answers after the
    last phase (the load draining) are left out, so every phase runs at full load."""

    def __init__(
        self, standin: Any, meter: CpuMeter, latencies: list[float], seconds: float
    ) -> None:
        self.standin, self.meter, self.latencies = standin, meter, latencies
        self.phases = len(latencies) * max(1, round(seconds / PHASE_S / len(latencies)))
        # (switch time, index of the latency set then, None at the end; CPU; machine busy)
        self.marks: list[tuple[float, int | None, dict[str, float], float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="phase-switcher", daemon=True)

    @property
    def load_seconds(self) -> float:
        """How long the load must run to cover the lead-in, every phase and a little more."""
        return LEAD_S + self.phases * PHASE_S + 0.3

    def __enter__(self) -> PhaseSwitcher:
        self._postgres = self.meter._postgres_pids()  # read here: the thread has no connection
        self.standin.latency = self.latencies[0]
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.standin.latency = 0.0

    def _mark(self, index: int | None) -> None:
        snapshot = self.meter.snapshot(self._postgres)
        self.marks.append((time.monotonic(), index, snapshot, self.meter.machine_busy()))

    def _run(self) -> None:
        next_at = time.monotonic() + LEAD_S
        for phase in range(self.phases + 1):
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return  # the load ended early: split() finds too few marks
            index = phase % len(self.latencies) if phase < self.phases else None
            if index is not None:
                self.standin.latency = self.latencies[index]
            self._mark(index)
            next_at += PHASE_S

    def split(self, result: LoadResult) -> tuple[list[Phase], list[Any]]:
        """Each latency's phases, and the answers outside every phase."""
        if len(self.marks) != self.phases + 1:
            raise RuntimeError("the load ended before its last phase")
        times = [mark[0] for mark in self.marks]
        responses: list[list[Any]] = [[] for _ in self.latencies]
        outside = []
        for response in result.responses:
            at = bisect.bisect_right(times, response.received) - 1
            if 0 <= at < self.phases:
                index = self.marks[at][1]
                assert index is not None
                responses[index].append(response)
            else:
                outside.append(response)
        parts = []
        for index in range(len(self.latencies)):
            seconds, busy = 0.0, 0.0
            cpu = dict.fromkeys(self.marks[0][2], 0.0)
            for start, end in itertools.pairwise(self.marks):
                if start[1] == index:
                    seconds += end[0] - start[0]
                    busy += end[3] - start[3]
                    for key in cpu:
                        cpu[key] += end[2][key] - start[2][key]
            # The client's CPU is only known for the whole load: shared by answers.
            share = len(responses[index]) / max(1, len(result.responses))
            part = LoadResult(
                responses=responses[index],
                started=result.started,
                elapsed=seconds,
                client_cpu=result.client_cpu * share,
                reconnects=0,
                samples=result.samples,
            )
            parts.append(Phase(part, seconds, cpu, busy))
        return parts, outside

    @staticmethod
    def summarize(config: str, rnd: int, scenario: str, phase: Phase) -> Outcome:
        outcome = summarize(config, rnd, scenario, phase.result)
        count = max(1, outcome.requests)
        outcome.elapsed_s = round(phase.seconds, 2)
        outcome.ok_per_s = round(outcome.ok / phase.seconds, 1) if phase.seconds else 0.0
        outcome.rate_per_s = outcome.ok_per_s
        outcome.req_per_s = round(outcome.requests / phase.seconds, 1) if phase.seconds else 0.0
        outcome.client_cpu_pct = round(100 * phase.result.client_cpu / phase.seconds, 1)
        outcome.cpu_ms_per_request = {k: round(1000 * v / count, 2) for k, v in phase.cpu.items()}
        ours = sum(phase.cpu.values()) + phase.result.client_cpu
        capacity = phase.seconds * (os.cpu_count() or 1)
        outcome.other_cpu_pct = round(100 * (phase.busy - ours) / capacity, 1)
        outcome.notes.append(
            f"{outcome.requests} answers in phases of {PHASE_S} s totalling {phase.seconds:.1f} s"
        )
        return outcome
