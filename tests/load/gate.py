"""Judge a ``make loadtest`` run phase by phase: webhook latency, decision latency, backlog, knee.

Reads what ``locustfile.py`` wrote (``requests.csv``, ``accepted.jsonl``, ``phases.json``,
``queue_depth.csv``) and, with ``--engine``, each accepted signal's decision: the
webhook-to-decision latency is the decision's ``decided_at`` minus the ``received_at`` of
the signal that triggered it, both stamped by the system (client clocks do not matter);
a signal without a decision counts as infinitely late. With ``emulator.json`` (the local
emulator's own timing, ``kyperian.local.emulator``) it reports the emulator's share apart.

Budgets (issue 15, from the specification's phases):

- ``phase2`` (8.3/s): webhook p99 <= 100 ms, webhook-to-decision p99 <= 250 ms, no errors.
- ``phase3`` (33/s): webhook-to-decision p99 <= 1 s, errors <= 0.1 %, queue depth bounded
  (the last 10 s hold at most two seconds of arrivals, never fewer than 20 messages).

429s from the stage throttle are counted apart from errors. The knee is the lowest rate
whose webhook p99 exceeds 100 ms, bracketed by the highest rate below it that stayed in.

Usage: ``python -m tests.load.gate --reports reports [--engine URL]``; exit 1 on a failed gate.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from kyperian.client import Unreachable, engine_request, symbol_path
from tests.load.profile import WARMUP

WEBHOOK_ROUTES: Final = frozenset({"/webhook", "/webhook/mtf", "/webhook [invalid]"})
KNEE_P99_MS: Final = 100.0
TAIL_SECONDS: Final = 10.0
BACKLOG_SECONDS: Final = 2.0
MIN_DEPTH: Final = 20
DECISION_PAGE: Final = 200


@dataclass(frozen=True)
class Budget:
    webhook_p99_ms: float | None
    decision_p99_ms: float
    max_error_rate: float
    bounded_queue: bool


BUDGETS: Final = {
    "phase2": Budget(100.0, 250.0, 0.0, bounded_queue=False),
    "phase3": Budget(None, 1000.0, 0.001, bounded_queue=True),
}


@dataclass
class PhaseFigures:
    """What one phase measured."""

    name: str
    rate: float
    seconds: float
    requests: int = 0
    webhook_ms: list[float] = field(default_factory=list)
    errors: int = 0
    throttled: int = 0
    late: int = 0
    decisions_ms: list[float] = field(default_factory=list)
    missing: int = 0
    depth_max: int | None = None
    depth_tail: float | None = None

    @property
    def achieved(self) -> float:
        return self.requests / self.seconds

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def decision_latencies(self) -> list[float]:
        """Measured latencies plus one infinity per signal that got no decision."""
        return self.decisions_ms + [math.inf] * self.missing


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (``nan`` when empty); infinities rank last."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def read_phases(reports: Path) -> list[PhaseFigures]:
    """Per-phase request figures from ``phases.json`` and ``requests.csv``."""
    phases = [
        PhaseFigures(p["name"], float(p["rate"]), float(p["seconds"]))
        for p in json.loads((reports / "phases.json").read_text())
    ]
    by_name = {p.name: p for p in phases}
    with (reports / "requests.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            phase = by_name[row["phase"]]
            phase.requests += 1
            if float(row["late_ms"]) > KNEE_P99_MS:
                phase.late += 1
            if row["status"] == "throttled":
                phase.throttled += 1
            elif row["status"] != "ok":
                phase.errors += 1
            if row["route"] in WEBHOOK_ROUTES and row["status"] != "throttled":
                phase.webhook_ms.append(float(row["latency_ms"]))
    return phases


def read_queue_depth(reports: Path, phases: Iterable[PhaseFigures]) -> None:
    """Each phase's largest queue depth and its mean over the phase's last ``TAIL_SECONDS``."""
    path = reports / "queue_depth.csv"
    if not path.exists():
        return
    samples: dict[str, list[tuple[float, int]]] = defaultdict(list)
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["visible"] and row["in_flight"].isdigit():
                depth = int(row["visible"]) + int(row["in_flight"])
                samples[row["phase"]].append((float(row["elapsed"]), depth))
    for phase in phases:
        seen = samples.get(phase.name)
        if not seen:
            continue
        phase.depth_max = max(d for _, d in seen)
        end = seen[-1][0]
        tail = [d for t, d in seen if t >= end - TAIL_SECONDS]
        phase.depth_tail = sum(tail) / len(tail)


def read_decisions(reports: Path, engine: str, phases: Iterable[PhaseFigures]) -> None:
    """Each accepted signal's webhook-to-decision latency, into its phase."""
    received: dict[str, tuple[datetime, str]] = {}
    symbols: set[str] = set()
    for line in (reports / "accepted.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("received_at"):
            received[row["signal_id"]] = (datetime.fromisoformat(row["received_at"]), row["phase"])
            symbols.add(row["symbol"])
    by_name = {p.name: p for p in phases}
    decided: set[str] = set()
    for symbol in sorted(symbols):
        for decision in _history(engine, symbol):
            trigger = decision.get("trigger_signal_id")
            if trigger in received and trigger not in decided:
                decided.add(trigger)
                arrived, phase = received[trigger]
                late = datetime.fromisoformat(decision["decided_at"]) - arrived
                by_name[phase].decisions_ms.append(late.total_seconds() * 1000)
    for signal_id, (_, phase) in received.items():
        if signal_id not in decided:
            by_name[phase].missing += 1


def _history(engine: str, symbol: str) -> Iterable[dict[str, Any]]:
    """Every decision the engine holds for ``symbol``, newest first, page by page."""
    before = ""
    while True:
        query = f"limit={DECISION_PAGE}" + (f"&before={quote(before)}" if before else "")
        answer = engine_request("GET", f"{engine}/decisions/{symbol_path(symbol)}/history?{query}")
        if not answer.ok:
            raise Unreachable(f"decision history of {symbol}: HTTP {answer.status}")
        yield from answer.body.get("decisions", [])
        before = answer.body.get("next_before") or ""
        if not before:
            return


def knee(phases: Sequence[PhaseFigures], budget_ms: float = KNEE_P99_MS) -> str:
    """Where webhook p99 first crosses ``budget_ms`` as the rate climbs (warm-up left out)."""
    measured = [p for p in phases if p.webhook_ms and p.name != WARMUP]
    points = sorted((p.rate, quantile(p.webhook_ms, 0.99)) for p in measured)
    below = None
    for rate, p99 in points:
        if p99 > budget_ms:
            if below is None:
                return f"knee: below {rate:.1f}/s (p99 {_ms(p99)} ms already at the lowest rate)"
            return (
                f"knee: between {below[0]:.1f}/s (p99 {_ms(below[1])} ms) "
                f"and {rate:.1f}/s (p99 {_ms(p99)} ms)"
            )
        below = (rate, p99)
    if below is None:
        return "knee: no webhook request measured"
    return f"knee: above {below[0]:.1f}/s (p99 {_ms(below[1])} ms at the highest rate run)"


def table(phases: Sequence[PhaseFigures]) -> list[str]:
    lines = [
        f"{'phase':<8} {'rate':>5} {'sent/s':>6} {'reqs':>5} {'err':>4} {'429':>4} {'late':>4}"
        f" | webhook ms {'p50':>5} {'p95':>5} {'p99':>5} | decision ms {'p50':>5} {'p95':>5}"
        f" {'p99':>6} {'none':>4} | queue max/tail"
    ]
    for p in phases:
        hook = [quantile(p.webhook_ms, q) for q in (0.5, 0.95, 0.99)]
        lat = p.decision_latencies()
        dec = [quantile(lat, q) for q in (0.5, 0.95, 0.99)]
        depth = "-" if p.depth_max is None else f"{p.depth_max}/{p.depth_tail:.0f}"
        lines.append(
            f"{p.name:<8} {p.rate:5.1f} {p.achieved:6.1f} {p.requests:5d} {p.errors:4d}"
            f" {p.throttled:4d} {p.late:4d} |          "
            f" {_ms(hook[0]):>5} {_ms(hook[1]):>5} {_ms(hook[2]):>5} |            "
            f" {_ms(dec[0]):>5} {_ms(dec[1]):>5} {_ms(dec[2]):>6} {p.missing:4d} | {depth}"
        )
    return lines


def verdicts(phases: Sequence[PhaseFigures], decisions_measured: bool) -> list[str]:
    """Every budget a gated phase missed (empty: pass)."""
    failed = []
    for p in phases:
        budget = BUDGETS.get(p.name)
        if budget is None:
            continue
        if p.requests == 0:
            failed.append(f"{p.name}: no request was made")
            continue
        p99 = quantile(p.webhook_ms, 0.99)
        if budget.webhook_p99_ms is not None and not p99 <= budget.webhook_p99_ms:
            failed.append(f"{p.name}: webhook p99 {_ms(p99)} ms > {budget.webhook_p99_ms:.0f} ms")
        if p.error_rate > budget.max_error_rate:
            failed.append(
                f"{p.name}: errors {p.errors}/{p.requests} ({p.error_rate:.2%})"
                f" > {budget.max_error_rate:.1%}"
            )
        if not decisions_measured:
            failed.append(f"{p.name}: webhook-to-decision not measured (no --engine)")
        else:
            d99 = quantile(p.decision_latencies(), 0.99)
            if not d99 <= budget.decision_p99_ms:
                failed.append(
                    f"{p.name}: webhook-to-decision p99 {_ms(d99)} ms"
                    f" > {budget.decision_p99_ms:.0f} ms"
                )
        limit = max(MIN_DEPTH, p.rate * BACKLOG_SECONDS)
        if budget.bounded_queue and p.depth_tail is not None and p.depth_tail > limit:
            failed.append(
                f"{p.name}: queue not bounded: {p.depth_tail:.0f} messages over the last"
                f" {TAIL_SECONDS:.0f} s > {limit:.0f}"
            )
    return failed


def emulator_share(reports: Path, phases: Sequence[PhaseFigures]) -> list[str]:
    """The local emulator's own time, per caller and operation, and per request and decision."""
    path = reports / "emulator.json"
    if not path.exists():
        return []
    calls = json.loads(path.read_text())["calls"]
    lines = [
        "emulator (moto) time, not the system's: what DynamoDB/EventBridge/SQS answer in on AWS",
        f"  {'caller':<8} {'operation':<44} {'calls':>6} {'p50 ms':>7} {'p99 ms':>7}",
    ]
    totals: dict[str, float] = defaultdict(float)
    for c in calls:
        lines.append(
            f"  {c['caller']:<8} {c['operation']:<44} {c['count']:6d} "
            f"{c['p50_ms']:7.1f} {c['p99_ms']:7.1f}"
        )
        if not c["operation"].endswith(".ReceiveMessage"):  # long polls wait by design
            totals[c["caller"]] += c["total_ms"]
    hooks = sum(len(p.webhook_ms) for p in phases)
    decided = sum(len(p.decisions_ms) for p in phases)
    if hooks:
        lines.append(f"  per webhook request: {totals['gateway'] / hooks:.1f} ms in the emulator")
    if decided:
        lines.append(
            f"  per decision: {totals['engine'] / decided:.1f} ms in the emulator"
            " (receives excluded: a long poll waits by design)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", default="reports", type=Path)
    parser.add_argument("--engine", help="engine URL, to measure webhook-to-decision latency")
    args = parser.parse_args(argv)

    phases = read_phases(args.reports)
    read_queue_depth(args.reports, phases)
    measured = False
    if args.engine:
        try:
            read_decisions(args.reports, args.engine, phases)
            measured = True
        except Unreachable as exc:
            print(f"webhook-to-decision: decisions not readable ({exc})")
    print("\n".join(table(phases)))
    print(knee(phases))
    print("\n".join(emulator_share(args.reports, phases)))
    failed = verdicts(phases, measured)
    print("FAIL: " + "; ".join(failed) if failed else "PASS: every gated phase within budget")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
