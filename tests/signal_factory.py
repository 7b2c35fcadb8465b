"""Build signals and their EventBridge envelopes for the engine's tests."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

from kyperian.domain.models import Signal, iso_utc

NOW = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
_SEQUENCE = itertools.count(1)


def make_signal(
    *,
    symbol: str = "AAPL",
    timeframe: str = "4h",
    source: str = "luxalgo",
    action: str = "BUY",
    confidence: float | None = 80.0,
    price: float | None = 190.0,
    at: datetime | None = None,
    age: timedelta | None = None,
    received_at: datetime | None = None,
    signal_id: str | None = None,
) -> Signal:
    """A valid signal; ``age`` places it that long before ``NOW`` unless ``at`` is given."""
    moment = at or (NOW - age if age is not None else NOW)
    return Signal(
        signal_id=signal_id or f"sig-{next(_SEQUENCE):06d}",
        symbol=symbol,
        action=action,
        timeframe=timeframe,
        source=source,
        price=price,
        confidence=confidence,
        timestamp=moment,
        key_time=moment,
        received_at=received_at or moment,
        ttl=int((moment + timedelta(days=7)).timestamp()),
    )


def envelope(signal: Signal) -> str:
    """The SQS body the EventBridge rule delivers for a validated signal."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SignalValidated",
            "source": "kyperian.signal.validator",
            "account": "123456789012",
            "time": iso_utc(signal.received_at),
            "region": "us-east-1",
            "resources": [],
            "detail": signal.to_event_detail(),
        }
    )


def documented_signals() -> list[Signal]:
    """The five signals of docs/fusion.md section 7."""
    rows = [
        ("s1", "1D", "technicals", "BUY", 80, NOW.replace(hour=0), 191),
        ("s2", "4h", "luxalgo", "STRONG_BUY", 90, NOW.replace(hour=12), 192),
        ("s3", "4h", "momentum", "BUY", 70, NOW.replace(hour=12), 193),
        ("s4", "1h", "momentum", "SELL", 60, NOW.replace(hour=14), 194),
        ("s5", "15m", "luxalgo", "BUY", 80, NOW.replace(hour=13, minute=30), 195),
    ]
    return [
        make_signal(
            signal_id=i, timeframe=tf, source=src, action=act, confidence=conf, at=at, price=price
        )
        for i, tf, src, act, conf, at, price in rows
    ]
