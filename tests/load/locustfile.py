"""Latency harness for the webhook: a realistic mix of TradingView traffic.

Mix per user: single-timeframe alerts across many symbols and all timeframes (most of
the traffic), multi-timeframe alerts, health checks, and a share of invalid alerts that
must be answered 400. A 429 from the stage throttle is recorded as a failure named
``throttled`` so the gate (``tests/load/gate.py``) can count it apart from real errors.
Every accepted signal id and its ``received_at`` go to ``reports/accepted.jsonl`` so the
gate can measure webhook-to-decision latency from the decisions' own timestamps.

Run through ``make loadtest`` (local stack, or ``HOST=https://...`` for a deployment).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant_throughput, events, task

from kyperian.client import api_key

SYMBOLS = [f"LT{n:03d}" for n in range(200)]
TIMEFRAMES = ["15", "30", "60", "240", "D", "W"]
ACTIONS = ["buy", "sell", "strong_buy", "strong_sell", "neutral", "wait"]
SOURCES = ["luxalgo", "technicals", "momentum", "volatility", "ai", "custom"]
REPORTS = Path(os.environ.get("KYPERIAN_REPORTS_DIR", "reports"))
KEY = api_key(None) or ""
ACCEPTED: list[dict[str, Any]] = []


def _alert(symbol: str, timeframe: str) -> dict[str, Any]:
    return {
        "passphrase": KEY,
        "symbol": f"NASDAQ:{symbol}",
        "action": random.choice(ACTIONS),
        "source": random.choice(SOURCES),
        "timeframe": timeframe,
        "price": round(random.uniform(10, 500), 2),
        "confidence": random.randint(40, 95),
        "indicators": {"rsi": round(random.uniform(20, 80), 1)},
    }


class TradingViewAlerts(FastHttpUser):
    """One TradingView account's alerts: ~2 requests a second per simulated user."""

    wait_time = constant_throughput(2)

    @task(70)
    def single_timeframe(self) -> None:
        body = _alert(random.choice(SYMBOLS), random.choice(TIMEFRAMES))
        self._post("/webhook", body, "/webhook")

    @task(10)
    def multi_timeframe(self) -> None:
        symbol = random.choice(SYMBOLS)
        entries = [
            {"timeframe": tf, "action": random.choice(ACTIONS)}
            for tf in random.sample(["W", "D", "240", "60"], k=3)
        ]
        body = {"passphrase": KEY, "symbol": symbol, "source": "technicals", "signals": entries}
        self._post("/webhook/mtf", body, "/webhook/mtf")

    @task(10)
    def health(self) -> None:
        with self.client.get("/health", name="/health", catch_response=True) as response:
            _judge(response, expected=200)

    @task(10)
    def invalid_alert(self) -> None:
        body = _alert(random.choice(SYMBOLS), "120")  # an interval the system does not fuse
        with self.client.post(
            "/webhook", json=body, name="/webhook [invalid]", catch_response=True
        ) as response:
            _judge(response, expected=400)

    def _post(self, path: str, body: dict[str, Any], name: str) -> None:
        with self.client.post(path, json=body, name=name, catch_response=True) as response:
            if _judge(response, expected=202):
                answer = response.json()
                for entry in answer.get("signals") or [answer]:
                    ACCEPTED.append(
                        {
                            "signal_id": entry["signal_id"],
                            "symbol": entry["symbol"],
                            "received_at": entry.get("received_at"),
                        }
                    )


def _judge(response: Any, expected: int) -> bool:
    """Success only on the expected status; 429s are marked ``throttled`` for the gate."""
    if response.status_code == expected:
        response.success()
        return True
    if response.status_code == 429:
        response.failure("throttled")
    else:
        response.failure(f"HTTP {response.status_code}")
    return False


@events.test_stop.add_listener  # type: ignore[misc]  # locust's decorator is untyped
def _write_accepted(**_kwargs: Any) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    with (REPORTS / "accepted.jsonl").open("w") as out:
        for row in ACCEPTED:
            out.write(json.dumps(row) + "\n")
