"""A tiny, dependency-free latency harness: run a callable many times, print percentiles.

Benchmarks measure warm, in-process cost with ``time.perf_counter_ns`` and report
p50/p95/p99/max, so the figures can be set against the specification's latency budget.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    """Percentiles of one benchmark, in microseconds."""

    name: str
    runs: int
    p50_us: float
    p95_us: float
    p99_us: float
    max_us: float
    budget_us: float | None

    def line(self) -> str:
        """One printable row; flags a p99 over budget."""
        verdict = ""
        if self.budget_us is not None:
            verdict = "  ok" if self.p99_us <= self.budget_us else "  OVER BUDGET"
            verdict = f"  budget p99<{self.budget_us:,.0f}us{verdict}"
        return (
            f"{self.name:<48} n={self.runs:<6} p50={self.p50_us:9.1f}us "
            f"p95={self.p95_us:9.1f}us p99={self.p99_us:9.1f}us max={self.max_us:9.1f}us{verdict}"
        )


def measure(
    name: str,
    func: Callable[[int], object],
    runs: int = 5000,
    warmup: int = 200,
    budget_us: float | None = None,
    report: bool = True,
) -> Figures:
    """Call ``func(i)`` ``warmup`` times, then time ``runs`` calls one by one.

    ``report=False`` leaves printing to the caller (for code that redirects stdout).
    """
    for i in range(warmup):
        func(i)
    samples: list[float] = []
    for i in range(runs):
        start = time.perf_counter_ns()
        func(warmup + i)
        samples.append((time.perf_counter_ns() - start) / 1000)
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    figures = Figures(name, runs, cuts[49], cuts[94], cuts[98], max(samples), budget_us)
    if report:
        print(figures.line(), flush=True)
    return figures
