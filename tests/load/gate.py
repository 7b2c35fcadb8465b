"""Judge a locust run against the specification's budget and report decision latency.

Fails (exit 1) when the aggregated p99 exceeds the budget (100 ms, the specification's
total) or when errors exceed the allowed rate (0.1 %); 429s from the stage throttle are
counted apart. With ``--engine``, it also measures webhook-to-decision latency from the
decisions' own timestamps: each decision's ``decided_at`` minus the ``received_at`` of the
signal that triggered it (both stamped by the system, so client clocks do not matter).

Usage: ``python -m tests.load.gate --reports reports [--engine http://127.0.0.1:8000]``
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from kyperian.client import Unreachable, engine_request, symbol_path


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _ms(value: str) -> float:
    return float(value) if value not in {"", "N/A"} else float("nan")


def webhook_figures(reports: Path) -> tuple[list[str], float, float, int, int, int]:
    """Printable rows, aggregated p99 (ms), requests/s, requests, errors, throttled."""
    stats = _rows(reports / "locust_stats.csv")
    failures = _rows(reports / "locust_failures.csv")
    throttled = sum(int(f["Occurrences"]) for f in failures if f["Error"] == "throttled")
    errors = sum(int(f["Occurrences"]) for f in failures) - throttled
    lines = [f"{'endpoint':<24} {'requests':>8} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6}"]
    aggregated = next(row for row in stats if row["Name"] == "Aggregated")
    for row in stats:
        lines.append(
            f"{row['Name']:<24} {row['Request Count']:>8} {float(row['Requests/s']):7.1f} "
            f"{_ms(row['50%']):6.0f} {_ms(row['95%']):6.0f} {_ms(row['99%']):6.0f}"
        )
    total = int(aggregated["Request Count"])
    return lines, _ms(aggregated["99%"]), float(aggregated["Requests/s"]), total, errors, throttled


def decision_latencies(reports: Path, engine: str) -> list[float]:
    """Milliseconds from each accepted signal's arrival to the decision it triggered."""
    received: dict[str, datetime] = {}
    symbols: dict[str, set[str]] = defaultdict(set)
    accepted = reports / "accepted.jsonl"
    for line in accepted.read_text().splitlines() if accepted.exists() else []:
        row = json.loads(line)
        if row.get("received_at"):
            received[row["signal_id"]] = datetime.fromisoformat(row["received_at"])
            symbols[row["symbol"]].add(row["signal_id"])
    latencies = []
    for symbol in symbols:
        url = f"{engine}/decisions/{symbol_path(symbol)}/history?limit=200"
        answer = engine_request("GET", url)
        for decision in answer.body.get("decisions", []) if answer.ok else []:
            trigger = decision.get("trigger_signal_id")
            if trigger in received:
                decided = datetime.fromisoformat(decision["decided_at"])
                latencies.append((decided - received[trigger]).total_seconds() * 1000)
    return latencies


def _percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"n={len(values)} (too few to rank)"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return f"n={len(values)} p50={cuts[49]:.1f}ms p95={cuts[94]:.1f}ms p99={cuts[98]:.1f}ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", default="reports", type=Path)
    parser.add_argument("--p99-ms", default=100.0, type=float)
    parser.add_argument("--max-error-rate", default=0.001, type=float)
    parser.add_argument("--engine", help="engine URL, to measure webhook-to-decision latency")
    args = parser.parse_args(argv)

    lines, p99, rps, total, errors, throttled = webhook_figures(args.reports)
    print("\n".join(lines))
    error_rate = errors / total if total else 1.0
    print(
        f"total {total} requests at {rps:.1f} req/s; errors {errors} ({error_rate:.3%}); "
        f"throttled (429, counted apart) {throttled}"
    )
    if args.engine:
        try:
            latencies = decision_latencies(args.reports, args.engine)
            print(f"webhook-to-decision: {_percentiles(latencies)}")
        except Unreachable as exc:
            print(f"webhook-to-decision: engine not reachable ({exc})")
    verdicts = []
    if not p99 <= args.p99_ms:
        verdicts.append(f"p99 {p99:.0f} ms exceeds {args.p99_ms:.0f} ms")
    if error_rate > args.max_error_rate:
        verdicts.append(f"error rate {error_rate:.3%} exceeds {args.max_error_rate:.3%}")
    if total == 0:
        verdicts.append("no request was made")
    print("FAIL: " + "; ".join(verdicts) if verdicts else "PASS: within the latency budget")
    return 1 if verdicts else 0


if __name__ == "__main__":
    sys.exit(main())
