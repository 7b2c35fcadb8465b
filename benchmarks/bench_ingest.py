"""Webhook validator cost, warm: what one request costs inside the Lambda.

Rows:
1. parse + auth + validate + normalize: the pure path of ``POST /webhook`` (body checks,
   JSON, constant-time key check against the cached secret, pydantic validation,
   canonical signal with its id). Budget: p99 < 1 ms (issue 2).
2. the whole handler (Powertools routing, logging, EMF metrics) with storage and
   publishing answered in memory, so the figure is the handler's own cost.
3. the whole handler with AWS answered by moto in-process (DynamoDB put + EventBridge
   put_events delivered to SQS); moto's own time dominates and is no AWS figure.
The specification's budget for the whole Lambda validation is 10 ms.

Run: ``uv run python -m benchmarks.bench_ingest`` (or ``make bench``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
from moto import mock_aws
from tests.aws_resources import create_ingest_resources
from tests.events.load import http_event
from tests.ingest_doubles import FixedSecret, MemoryPublisher, MemoryStore

from kyperian.ingest import handler
from kyperian.ingest.parse import (
    ArrivalWindow,
    check_media_type,
    check_size,
    parse_alert,
    pop_passphrase,
    read_json_object,
)
from kyperian.local.resources import SERVICES
from kyperian.settings import Settings, get_settings

from .timing import measure

KEY = "bench-key-0123456789abcdefghijklmnopqrstu"
SYMBOLS = [f"SYM{n}" for n in range(500)]
TIMEFRAMES = ["15", "30", "60", "240", "D", "W"]


def alert(i: int) -> dict[str, Any]:
    """A distinct, realistic TradingView alert per iteration (no duplicate short-cuts)."""
    return {
        "passphrase": KEY,
        "symbol": f"NASDAQ:{SYMBOLS[i % len(SYMBOLS)]}",
        "action": ("buy", "sell", "strong_buy")[i % 3],
        "source": "luxalgo",
        "timeframe": TIMEFRAMES[i % len(TIMEFRAMES)],
        "price": 100 + (i % 997) / 10,
        "confidence": 85,
        "indicators": {"rsi": 61.2, "macd": 0.84},
        "timestamp": datetime.fromtimestamp(1_795_500_000 + i, UTC).isoformat(),
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Send the handler's log lines and EMF records to a sink while timing."""
    sink = io.StringIO()
    stream_handler = handler.logger.registered_handler
    previous = stream_handler.setStream(sink)  # type: ignore[attr-defined]
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        stream_handler.setStream(previous)  # type: ignore[attr-defined]


def bench_pure(settings: Settings) -> None:
    bodies = [json.dumps(alert(i)).encode() for i in range(6000)]
    window = ArrivalWindow.at(datetime.fromtimestamp(1_795_506_000, UTC), 7, 300)

    def one(i: int) -> object:
        body = bodies[i % len(bodies)]
        check_size(body, settings.max_body_bytes)
        check_media_type("application/json")
        payload = read_json_object(body)
        handler._authenticate(pop_passphrase(payload), wired)
        return parse_alert(payload, window)

    wired = handler.Wiring(settings, MemoryStore(), MemoryPublisher(), FixedSecret(KEY))
    measure("ingest: parse+auth+validate+normalize", one, runs=5000, budget_us=1000)


def bench_handler_in_memory(settings: Settings) -> None:
    now_alerts = [alert(i) for i in range(6000)]
    for i, body in enumerate(now_alerts):
        # No timestamp: the bar start is the identity, so a symbol of its own per request
        # keeps every request new (a duplicate skips the per-dimension metrics).
        body.pop("timestamp")
        body["symbol"] = f"NASDAQ:N{i}"
    events = [http_event(body=body) for body in now_alerts]
    handler.wiring.cache_clear()
    wired = handler.Wiring(settings, MemoryStore(), MemoryPublisher(), FixedSecret(KEY))
    original = handler.wiring
    handler.wiring = lambda: wired  # type: ignore[assignment]
    # What wiring() does besides: every metric document carries service and environment.
    handler.metrics.set_dimensions(service=handler.logger.service, environment=settings.environment)
    context = _Context()
    try:
        with _quiet():
            figures = measure(
                "ingest: whole handler, AWS in memory",
                lambda i: handler.lambda_handler(events[i % len(events)], context),
                runs=5000,
                budget_us=10_000,
                report=False,
            )
        print(figures.line(), flush=True)
    finally:
        handler.wiring = original


def bench_handler_moto() -> None:
    with mock_aws():
        session: Any = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name) for name in SERVICES}
        resources = create_ingest_resources(clients, environment="bench")
        clients["secretsmanager"].put_secret_value(SecretId=resources.secret_id, SecretString=KEY)
        os.environ["KYPERIAN_ENVIRONMENT"] = "bench"
        get_settings.cache_clear()
        handler.wiring.cache_clear()
        events = [http_event(body=alert(i)) for i in range(1200)]
        context = _Context()
        with _quiet():
            figures = measure(
                "ingest: whole handler, AWS by moto in-process",
                lambda i: handler.lambda_handler(events[i], context),
                runs=1000,
                warmup=100,
                report=False,
            )
        print(figures.line(), flush=True)


class _Context:
    function_name = "kyperian-bench-signal-validator"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"


def main() -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KYPERIAN_ENVIRONMENT": "bench",
    }.items():
        os.environ.setdefault(name, value)
    settings = get_settings()
    bench_pure(settings)
    bench_handler_in_memory(settings)
    bench_handler_moto()


if __name__ == "__main__":
    main()
