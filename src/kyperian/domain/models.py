"""Canonical signal vocabulary shared by ingestion and the engine.

Everything here is pure data: frozen pydantic models and enums with no I/O, so the
Lambda validator and the ECS engine agree on one shape of a signal and fusion can
replay stored signals deterministically. TradingView's own spellings (``buy``,
``240``, ``D``) are mapped to these canonical values in ``kyperian.ingest.parse``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer


class Action(StrEnum):
    """What a signal (or a decision) recommends."""

    BUY = "BUY"
    SELL = "SELL"
    STRONG_BUY = "STRONG_BUY"
    STRONG_SELL = "STRONG_SELL"
    NEUTRAL = "NEUTRAL"
    WAIT = "WAIT"

    @property
    def direction(self) -> int:
        """+1 for the buy side, -1 for the sell side, 0 for no opinion."""
        return _DIRECTION[self]

    @property
    def strength(self) -> float:
        """Signed conviction of the action alone: STRONG_* count double a plain BUY/SELL."""
        return _STRENGTH[self]


_DIRECTION = MappingProxyType(
    {
        Action.BUY: 1,
        Action.STRONG_BUY: 1,
        Action.SELL: -1,
        Action.STRONG_SELL: -1,
        Action.NEUTRAL: 0,
        Action.WAIT: 0,
    }
)
_STRENGTH = MappingProxyType(
    {
        Action.STRONG_BUY: 1.0,
        Action.BUY: 0.5,
        Action.NEUTRAL: 0.0,
        Action.WAIT: 0.0,
        Action.SELL: -0.5,
        Action.STRONG_SELL: -1.0,
    }
)


class Timeframe(StrEnum):
    """The chart resolutions the system fuses, from the shortest to the longest."""

    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1D"
    W1 = "1W"

    @property
    def seconds(self) -> int:
        """Length of one bar of this timeframe."""
        return _BAR_SECONDS[self]

    @property
    def rank(self) -> int:
        """0 for the shortest timeframe; higher timeframes rank higher."""
        return _ORDER.index(self)


_BAR_SECONDS = MappingProxyType(
    {
        Timeframe.M15: 15 * 60,
        Timeframe.M30: 30 * 60,
        Timeframe.H1: 3600,
        Timeframe.H4: 4 * 3600,
        Timeframe.D1: 86400,
        Timeframe.W1: 7 * 86400,
    }
)
_ORDER = tuple(Timeframe)


class Source(StrEnum):
    """Which family of indicator produced a signal."""

    LUXALGO = "luxalgo"
    TECHNICALS = "technicals"
    MOMENTUM = "momentum"
    VOLATILITY = "volatility"
    AI = "ai"
    CUSTOM = "custom"


def _iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and millisecond precision: sortable as text.

    The fields are written as they stand (a value is expected in UTC; an offset is not
    applied) and the microseconds cut to milliseconds: ``isoformat`` writes exactly that in
    its first 23 characters, in half the time ``strftime`` takes (this runs four times per
    webhook request). Before the year 1000 ``strftime`` writes the year unpadded (``5``,
    not ``0005``), and that rendering is kept.
    """
    if value.year < _FOUR_DIGIT_YEARS:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.isoformat(timespec="milliseconds")[:23] + "Z"


_FOUR_DIGIT_YEARS = 1000


IsoTime = Annotated[datetime, PlainSerializer(_iso_utc, return_type=str, when_used="json")]
"""A UTC datetime that serializes as sortable ISO text (DynamoDB sort keys compare strings)."""


class Signal(BaseModel):
    """One validated, normalized TradingView alert for one symbol and one timeframe.

    ``timestamp`` is when the alert says it happened (its own time, else the time it
    arrived); ``key_time`` is the time that identifies it for de-duplication (its own
    time when it carried one, else the start of its bar), so a repeated delivery of the
    same alert maps to the same ``signal_id`` and the same storage key.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_id: str
    symbol: str
    exchange: str | None = None
    action: Action
    timeframe: Timeframe
    source: Source
    price: float | None = None
    confidence: float | None = Field(default=None, ge=0, le=100)
    indicators: dict[str, float] = Field(default_factory=dict)
    take_profit: float | None = Field(default=None, gt=0)
    """Optional exit above (buy) or below (sell) the price: with ``stop_loss``, a bracket."""
    stop_loss: float | None = Field(default=None, gt=0)
    """Optional protective stop on the other side of the price."""
    timestamp: IsoTime
    key_time: IsoTime
    received_at: IsoTime
    ttl: int
    """Epoch seconds after which DynamoDB may delete the stored signal."""

    def to_event_detail(self) -> dict[str, Any]:
        """The JSON-ready form published on the event bus and cached by the engine.

        What ``self.model_dump(mode="json")`` answers, written out (a test compares the two
        over arbitrary signals, values and types): pydantic reaches the times' serializer
        through Python three times, and the dump cost twice this on every webhook request.
        """
        return {
            "signal_id": self.signal_id,
            "symbol": self.symbol,
            "exchange": self.exchange,
            "action": self.action.value,
            "timeframe": self.timeframe.value,
            "source": self.source.value,
            "price": self.price,
            "confidence": self.confidence,
            "indicators": dict(self.indicators),
            "take_profit": self.take_profit,
            "stop_loss": self.stop_loss,
            "timestamp": _iso_utc(self.timestamp),
            "key_time": _iso_utc(self.key_time),
            "received_at": _iso_utc(self.received_at),
            "ttl": self.ttl,
        }


def iso_utc(value: datetime) -> str:
    """Public form of the sortable ISO rendering used for keys and payloads."""
    return _iso_utc(value)
