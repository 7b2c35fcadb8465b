"""The load gate: per-phase budgets, decisions that never came, the backlog, the knee."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from tests.load.gate import (
    PhaseFigures,
    knee,
    quantile,
    read_phases,
    read_queue_depth,
    verdicts,
)


def _phase(name: str, rate: float, webhook: list[float], decisions: list[float]) -> PhaseFigures:
    figures = PhaseFigures(name, rate, 60.0, requests=len(webhook))
    figures.webhook_ms = webhook
    figures.decisions_ms = decisions
    return figures


def test_phases_within_their_budgets_pass() -> None:
    # GIVEN Phase 2 and Phase 3 figures inside every budget
    phases = [
        _phase("phase2", 8.3, [20.0] * 100, [100.0] * 100),
        _phase("phase3", 33.0, [300.0] * 100, [800.0] * 100),
    ]

    # THEN nothing fails (Phase 3 has no webhook budget of its own)
    assert verdicts(phases, decisions_measured=True) == []


def test_each_missed_budget_is_named() -> None:
    # GIVEN a slow Phase 2 with one error, and a Phase 3 whose queue kept growing
    slow = _phase("phase2", 8.3, [20.0] * 98 + [150.0, 150.0], [300.0] * 100)
    slow.errors = 1
    backlog = _phase("phase3", 33.0, [20.0] * 100, [100.0] * 100)
    backlog.depth_tail = 500.0

    # WHEN judged
    failed = verdicts([slow, backlog], decisions_measured=True)

    # THEN every miss is reported with its figure
    assert failed == [
        "phase2: webhook p99 150 ms > 100 ms",
        "phase2: errors 1/100 (1.00%) > 0.0%",
        "phase2: webhook-to-decision p99 300 ms > 250 ms",
        "phase3: queue not bounded: 500 messages over the last 10 s > 66",
    ]


def test_a_signal_without_a_decision_counts_as_infinitely_late() -> None:
    # GIVEN 99 fast decisions and two signals that never got one
    phase = _phase("phase3", 33.0, [10.0] * 100, [10.0] * 99)
    phase.missing = 2

    # THEN the p99 is infinite and the gate fails; unmeasured decisions fail too
    assert math.isinf(quantile(phase.decision_latencies(), 0.99))
    assert verdicts([phase], decisions_measured=True) == [
        "phase3: webhook-to-decision p99 never ms > 1000 ms"
    ]
    assert "not measured" in verdicts([phase], decisions_measured=False)[0]


def test_the_knee_is_bracketed_by_the_rates_around_the_crossing() -> None:
    fast, slow = [10.0] * 100, [500.0] * 100
    assert knee([_phase("a", 8.3, fast, []), _phase("b", 33, slow, [])]) == (
        "knee: between 8.3/s (p99 10 ms) and 33.0/s (p99 500 ms)"
    )
    assert knee([_phase("a", 8.3, slow, [])]).startswith("knee: below 8.3/s")
    assert knee([_phase("a", 50, fast, [])]).startswith("knee: above 50.0/s")
    # a slow warm-up (the engine's first sight of each symbol) is not the knee
    warmup = _phase("warmup", 5, slow, [])
    assert knee([warmup, _phase("a", 8.3, fast, [])]).startswith("knee: above 8.3/s")


def test_throttled_requests_are_counted_apart_from_errors(tmp_path: Path) -> None:
    # GIVEN a run with a 429, a 500, a late send and a queue sampled twice
    (tmp_path / "phases.json").write_text(
        json.dumps([{"name": "phase3", "rate": 33, "seconds": 2}])
    )
    rows = [
        ["phase3", "/webhook", "0.1", "0.0", "12.0", "ok"],
        ["phase3", "/webhook", "0.2", "0.0", "1.0", "throttled"],
        ["phase3", "/webhook/mtf", "0.3", "250.0", "30.0", "HTTP 500"],
        ["phase3", "/health", "0.4", "0.0", "2.0", "ok"],
    ]
    with (tmp_path / "requests.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["phase", "route", "due_s", "late_ms", "latency_ms", "status"])
        writer.writerows(rows)
    (tmp_path / "queue_depth.csv").write_text(
        "elapsed,phase,visible,in_flight\n0.5,phase3,3,2\n1.5,phase3,1,0\n"
    )

    # WHEN read
    (phase,) = read_phases(tmp_path)
    read_queue_depth(tmp_path, [phase])

    # THEN the 429 is neither an error nor a webhook latency; health is not a webhook call
    assert (phase.requests, phase.errors, phase.throttled, phase.late) == (4, 1, 1, 1)
    assert phase.webhook_ms == [12.0, 30.0]
    assert (phase.depth_max, phase.depth_tail) == (5, 3.0)
