"""Locust traffic for ``make loadtest``: TradingView's mix, sent at the profile's arrival rates.

The rates come from ``tests/load/profile.py`` (the specification's phases; ``PHASES=`` and
``SPIKE=1`` change them). One shared ``Schedule`` decides when each request is due; a pool
of simulated clients, sized so one is always free, sends each request at its due time
whatever the earlier ones are doing (an open model). Each request is one of: a
single-timeframe alert on one of 200 symbols (70 %), a three-timeframe alert (10 %), a
health check (10 %), an invalid alert that must be answered 400 (10 %).

Written for ``tests/load/gate.py`` in ``$KYPERIAN_REPORTS_DIR`` (default ``reports``):
``requests.csv`` (phase, route, due and send lateness, latency, status of every request),
``accepted.jsonl`` (each accepted signal id, symbol, ``received_at`` and phase) and, when
``QUEUE_URL`` is set, ``queue_depth.csv`` (the engine queue sampled every second). A 429
from the stage throttle is recorded as a failure named ``throttled``.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]  # gevent ships no stubs
from locust import FastHttpUser, LoadTestShape, constant, events, task

from kyperian.client import api_key
from tests.load.profile import (
    WARMUP,
    Phase,
    Schedule,
    duration,
    phase_at,
    profile,
    users_needed,
)

SYMBOLS = [f"LT{n:03d}" for n in range(200)]
TIMEFRAMES = ["15", "30", "60", "240", "D", "W"]
ACTIONS = ["buy", "sell", "strong_buy", "strong_sell", "neutral", "wait"]
SOURCES = ["luxalgo", "technicals", "momentum", "volatility", "ai", "custom"]
KINDS = ("single", "mtf", "health", "invalid")
WEIGHTS = (70, 10, 10, 10)

REPORTS = Path(os.environ.get("KYPERIAN_REPORTS_DIR", "reports"))
KEY = api_key(None) or ""
PHASES = profile(os.environ.get("PHASES"), os.environ.get("SPIKE", "") not in {"", "0"})
SCHEDULE = Schedule(PHASES, seed=int(os.environ.get("LOAD_SEED", "15")))
USERS = users_needed(PHASES)
DRAIN_SECONDS = 5.0
"""After the last due time: let requests in flight finish before the users are stopped."""

REQUESTS: list[tuple[str, str, float, float, float, str]] = []
ACCEPTED: list[dict[str, Any]] = []
_started: list[float] = []
_WARMED = itertools.count()


def _start() -> float:
    if not _started:
        _started.append(time.monotonic())
    return _started[0]


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


def _mtf_alert() -> dict[str, Any]:
    entries = [
        {"timeframe": tf, "action": random.choice(ACTIONS)}
        for tf in random.sample(["W", "D", "240", "60"], k=3)
    ]
    return {
        "passphrase": KEY,
        "symbol": random.choice(SYMBOLS),
        "source": "technicals",
        "signals": entries,
    }


class TradingViewAlerts(FastHttpUser):
    """A free client: takes the next due request from the shared schedule and sends it then."""

    wait_time = constant(0)

    @task
    def next_request(self) -> None:
        start = _start()
        slot = SCHEDULE.next_due()
        if slot is None:
            gevent.sleep(3600)  # the profile is over; the shape stops the test
            return
        due, phase = slot
        gevent.sleep(max(0.0, start + due - time.monotonic()))
        late_ms = (time.monotonic() - start - due) * 1000
        kind = random.choices(KINDS, WEIGHTS)[0]
        if phase.name == WARMUP:  # every symbol once, in turn
            body = _alert(SYMBOLS[next(_WARMED) % len(SYMBOLS)], random.choice(TIMEFRAMES))
            self._send("POST", "/webhook", "/webhook", body, 202, phase, due, late_ms)
        elif kind == "single":
            body = _alert(random.choice(SYMBOLS), random.choice(TIMEFRAMES))
            self._send("POST", "/webhook", "/webhook", body, 202, phase, due, late_ms)
        elif kind == "mtf":
            body = _mtf_alert()
            self._send("POST", "/webhook/mtf", "/webhook/mtf", body, 202, phase, due, late_ms)
        elif kind == "health":
            self._send("GET", "/health", "/health", None, 200, phase, due, late_ms)
        else:  # an interval the system does not fuse: must be refused with a 400
            body = _alert(random.choice(SYMBOLS), "120")
            self._send("POST", "/webhook", "/webhook [invalid]", body, 400, phase, due, late_ms)

    def _send(
        self,
        method: str,
        path: str,
        name: str,
        body: dict[str, Any] | None,
        expected: int,
        phase: Phase,
        due: float,
        late_ms: float,
    ) -> None:
        sent = time.perf_counter()
        with self.client.request(
            method, path, json=body, name=name, catch_response=True
        ) as response:
            latency_ms = (time.perf_counter() - sent) * 1000
            status = _judge(response, expected)
            REQUESTS.append((phase.name, name, due, late_ms, latency_ms, status))
            if status == "ok" and expected == 202:
                answer = response.json()
                for entry in answer.get("signals") or [answer]:
                    ACCEPTED.append(
                        {
                            "signal_id": entry["signal_id"],
                            "symbol": entry["symbol"],
                            "received_at": entry.get("received_at"),
                            "phase": phase.name,
                        }
                    )


def _judge(response: Any, expected: int) -> str:
    """``ok`` on the expected status; ``throttled`` for a 429; ``HTTP <code>`` otherwise."""
    if response.status_code == expected:
        response.success()
        return "ok"
    status = "throttled" if response.status_code == 429 else f"HTTP {response.status_code}"
    response.failure(status)
    return status


class Phases(LoadTestShape):
    """All clients at once, for the length of the profile plus the drain, then stop."""

    def tick(self) -> tuple[int, float] | None:
        if self.get_run_time() > duration(PHASES) + DRAIN_SECONDS:  # type: ignore[no-untyped-call]
            return None
        return USERS, float(USERS)


def _sample_queue(queue_url: str) -> None:
    """Every second: the engine queue's waiting and in-flight messages, with the phase."""
    import boto3  # only when sampling: a deployed run without QUEUE_URL needs no AWS access

    sqs: Any = boto3.client("sqs", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_SQS"))
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    with (REPORTS / "queue_depth.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["elapsed", "phase", "visible", "in_flight"])
        while True:
            elapsed = time.monotonic() - _start()
            phase = phase_at(PHASES, elapsed)
            current = phase.name if phase else "drain"
            try:
                got = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
                values = got["Attributes"]
                writer.writerow([f"{elapsed:.1f}", current, values[names[0]], values[names[1]]])
                out.flush()
            except Exception as exc:  # a missed sample must not stop the test
                writer.writerow([f"{elapsed:.1f}", current, "", f"error: {type(exc).__name__}"])
            gevent.sleep(1.0)


@events.test_start.add_listener  # type: ignore[misc]  # locust's decorator is untyped
def _begin(**_kwargs: Any) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "phases.json").write_text(
        json.dumps([{"name": p.name, "rate": p.rate, "seconds": p.seconds} for p in PHASES])
    )
    queue_url = os.environ.get("QUEUE_URL")
    if queue_url:
        gevent.spawn(_sample_queue, queue_url)


@events.test_stop.add_listener  # type: ignore[misc]  # locust's decorator is untyped
def _write(**_kwargs: Any) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    with (REPORTS / "requests.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["phase", "route", "due_s", "late_ms", "latency_ms", "status"])
        for phase, route, due, late_ms, latency_ms, status in REQUESTS:
            fields = [phase, route, f"{due:.4f}", f"{late_ms:.1f}", f"{latency_ms:.2f}", status]
            writer.writerow(fields)
    with (REPORTS / "accepted.jsonl").open("w") as out:
        for row in ACCEPTED:
            out.write(json.dumps(row) + "\n")
