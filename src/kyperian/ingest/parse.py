"""TradingView alert -> canonical ``Signal``: body decoding, validation and normalization.

This is where TradingView's renderings are mapped to the canonical vocabulary
(``240`` -> ``4h``, ``buy`` -> ``BUY``, ``NASDAQ:AAPL`` -> exchange + symbol) and where
every problem with an alert is collected, so the caller gets all of them in one 400.
It does no I/O and never raises anything but ``RequestRejected`` subclasses for bad input:
the webhook must never answer 5xx because of what a client sent.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Final, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kyperian.domain.errors import Problem
from kyperian.domain.models import Action, Signal, Source, Timeframe

# --- errors the webhook answers with a 4xx ------------------------------------------------


class RequestRejected(Exception):
    """A request the webhook refuses; carries the HTTP status and a machine-readable code."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class PayloadTooLarge(RequestRejected):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(RequestRejected):
    status = 415
    code = "unsupported_media_type"


class MalformedJson(RequestRejected):
    code = "malformed_json"


class ValidationFailed(RequestRejected):
    code = "validation_failed"


# --- body decoding ------------------------------------------------------------------------

ACCEPTED_MEDIA_TYPES: Final = frozenset({"application/json", "text/plain", ""})
"""TradingView sends ``application/json`` when the message parses as JSON, else ``text/plain``."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]{1,64})\s*\}\}")


def check_size(body: bytes, limit: int) -> None:
    """Refuse a body over ``limit`` bytes before spending any time on it."""
    if len(body) > limit:
        raise PayloadTooLarge(f"body is {len(body)} bytes; the limit is {limit} bytes")


def check_media_type(content_type: str | None) -> None:
    """Accept JSON sent as ``application/json`` or ``text/plain`` (or without a type)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"content type {media_type!r} is not accepted; send JSON as "
            "application/json or text/plain"
        )


def read_json_object(body: bytes) -> dict[str, Any]:
    """Decode a body into a JSON object, explaining exactly where and why it is not one."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MalformedJson(
            "body is not UTF-8 text", [Problem("body", f"invalid UTF-8 at byte {exc.start}")]
        ) from None
    if not text.strip():
        raise MalformedJson("body is empty", [Problem("body", "expected a JSON object")])
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _explain_decode_error(text, exc) from None
    except RecursionError:
        raise MalformedJson(
            "body is nested too deeply", [Problem("body", "nested too deeply")]
        ) from None
    except ValueError as exc:  # e.g. an integer literal with thousands of digits
        raise MalformedJson("body is not valid JSON", [Problem("body", str(exc))]) from None
    if not isinstance(value, dict):
        raise MalformedJson(
            "body must be a JSON object",
            [Problem("body", f"expected a JSON object, got {_json_type(value)}")],
        )
    return value


def _explain_decode_error(text: str, exc: json.JSONDecodeError) -> MalformedJson:
    """Name the position, and the unrendered TradingView placeholder if one is to blame."""
    where = f"line {exc.lineno} column {exc.colno} (char {exc.pos})"
    placeholder = _PLACEHOLDER.search(text)
    if placeholder is not None:
        line = text.count("\n", 0, placeholder.start()) + 1
        reason = (
            f"unrendered TradingView placeholder {placeholder.group(0)} at line {line}: "
            "TradingView leaves a placeholder as-is when the chart has no such value; "
            "remove it or quote it"
        )
    else:
        reason = f"{exc.msg} at {where}"
    return MalformedJson(f"body is not valid JSON: {reason}", [Problem("body", reason)])


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def pop_passphrase(payload: dict[str, Any]) -> str | None:
    """Remove and return the body's ``passphrase`` so it is never validated, stored or logged."""
    value = payload.pop("passphrase", None)
    return value if isinstance(value, str) else None


# --- TradingView renderings ---------------------------------------------------------------

TIMEFRAME_RENDERINGS: Final[Mapping[str, Timeframe]] = {
    # canonical spellings (matched case-insensitively)
    "15m": Timeframe.M15,
    "30m": Timeframe.M30,
    "1h": Timeframe.H1,
    "4h": Timeframe.H4,
    "1d": Timeframe.D1,
    "1w": Timeframe.W1,
    # TradingView's {{interval}}: minutes for intraday, D/W with an optional multiplier
    "15": Timeframe.M15,
    "30": Timeframe.M30,
    "60": Timeframe.H1,
    "240": Timeframe.H4,
    "d": Timeframe.D1,
    "w": Timeframe.W1,
    # other common spellings
    "15min": Timeframe.M15,
    "30min": Timeframe.M30,
    "1hr": Timeframe.H1,
    "h1": Timeframe.H1,
    "4hr": Timeframe.H4,
    "h4": Timeframe.H4,
    "1440": Timeframe.D1,
    "10080": Timeframe.W1,
}
"""Every accepted rendering of a timeframe, lower-cased, mapped to the canonical one."""

ACTION_RENDERINGS: Final[Mapping[str, Action]] = {
    **{action.value.lower(): action for action in Action},
    # {{strategy.market_position}} renders long / short / flat
    "long": Action.BUY,
    "short": Action.SELL,
    "flat": Action.NEUTRAL,
}

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._!/&+-]{0,31}$")
_EXCHANGE = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,23}$")
_INDICATOR_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_INDICATORS: Final = 32
MAX_PRICE: Final = 1e12
MAX_MTF_ENTRIES: Final = 10
"""One PutEvents call carries at most 10 entries: an MTF alert is published in one call."""
SMALLEST_STORABLE: Final = 1e-130
"""DynamoDB stores numbers from 1E-130 to 9.99...E+125 in magnitude (and zero)."""
LARGEST_STORABLE: Final = 1e126


def _reject_placeholder(value: str) -> None:
    match = _PLACEHOLDER.search(value)
    if match is not None:
        raise ValueError(f"unrendered TradingView placeholder {match.group(0)}")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    value = value.strip()
    _reject_placeholder(value)
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


def normalize_timeframe(value: object) -> Timeframe:
    """Map ``{{interval}}`` renderings and canonical spellings to a ``Timeframe``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value, "timeframe")
    timeframe = TIMEFRAME_RENDERINGS.get(text.lower())
    if timeframe is None:
        supported = ", ".join(tf.value for tf in Timeframe)
        raise ValueError(f"unsupported timeframe {text[:32]!r}; supported: {supported}")
    return timeframe


def normalize_action(value: object) -> Action:
    """Case-insensitive action; ``strong buy``/``strong-buy`` and long/short/flat accepted."""
    text = _text(value, "action")
    action = ACTION_RENDERINGS.get(re.sub(r"[\s-]+", "_", text.lower()))
    if action is None:
        supported = ", ".join(a.value for a in Action)
        raise ValueError(f"unsupported action {text[:32]!r}; supported: {supported}")
    return action


def normalize_source(value: object) -> Source:
    text = _text(value, "source")
    try:
        return Source(text.lower())
    except ValueError:
        supported = ", ".join(s.value for s in Source)
        raise ValueError(f"unsupported source {text[:32]!r}; supported: {supported}") from None


def split_symbol(value: object) -> tuple[str | None, str]:
    """``NASDAQ:AAPL`` -> (``NASDAQ``, ``AAPL``); upper-cased; ``AAPL`` -> (None, ``AAPL``)."""
    text = _text(value, "symbol").upper()
    exchange, _, ticker = text.rpartition(":")
    if not _SYMBOL.match(ticker):
        raise ValueError(f"invalid symbol {ticker[:40]!r}: 1-32 of A-Z 0-9 . _ ! / & + -")
    if exchange and not _EXCHANGE.match(exchange):
        raise ValueError(f"invalid exchange prefix {exchange[:40]!r}")
    return (exchange or None), ticker


def finite_number(value: object, what: str) -> float:
    """A finite number DynamoDB can store, given as a JSON number or as text (``"189.5"``).

    The value is read as a double (about 17 significant digits; more precision is rounded
    away), so what is stored never exceeds DynamoDB's 38 digits; its magnitude must be zero
    or within DynamoDB's range, else the alert is refused here rather than by the table.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not a boolean")
    if isinstance(value, str):
        _reject_placeholder(value)
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{what} must be a number, got text") from None
    if not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number")
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond a double's range
        raise ValueError(f"{what} is too large") from None
    if not math.isfinite(number) or abs(number) >= LARGEST_STORABLE:
        raise ValueError(f"{what} must be finite and below 1E+126 in magnitude")
    if number and abs(number) < SMALLEST_STORABLE:
        raise ValueError(f"{what} must be 0 or at least 1E-130 in magnitude")
    return number


def parse_timestamp(value: object) -> datetime:
    """ISO 8601 (``{{time}}``/``{{timenow}}``) or epoch seconds/milliseconds -> aware UTC."""
    if isinstance(value, str) and not re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        text = _text(value, "timestamp")
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO 8601 time or epoch number: {text[:40]!r}") from None
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable UTC
            raise ValueError(f"time out of range: {text[:40]!r}") from None
    epoch = finite_number(value, "timestamp")
    if epoch > 1e11:  # milliseconds, as TradingView's {{time}} can be rendered in Pine
        epoch /= 1000
    if not 0 < epoch < 4102444800:  # 2100-01-01
        raise ValueError("epoch time out of range")
    return datetime.fromtimestamp(epoch, UTC)


# --- the alert models ---------------------------------------------------------------------


@dataclass(frozen=True)
class ArrivalWindow:
    """When an alert arrived and the range its own timestamp must fall in."""

    received_at: datetime
    retention: timedelta
    skew: timedelta

    @classmethod
    def at(cls, received_at: datetime, retention_days: int, skew_seconds: int) -> ArrivalWindow:
        return cls(received_at, timedelta(days=retention_days), timedelta(seconds=skew_seconds))

    def check(self, moment: datetime) -> datetime:
        if moment > self.received_at + self.skew:
            raise ValueError("timestamp is in the future")
        if moment < self.received_at - self.retention:
            raise ValueError("timestamp is older than the signal retention period")
        return moment


class _Fields(BaseModel):
    """Optional fields an alert and an MTF entry share, each normalized on the way in."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    price: float | None = None
    confidence: float | None = None
    indicators: dict[str, float] = Field(default_factory=dict)
    timestamp: datetime | None = None
    take_profit: float | None = None
    stop_loss: float | None = None

    @field_validator("price", "take_profit", "stop_loss", mode="plain")
    @classmethod
    def _price(cls, value: object, info: ValidationInfo) -> float | None:
        if value is None:
            return None
        price = finite_number(value, str(info.field_name))
        if not 0 < price <= MAX_PRICE:
            raise ValueError(
                f"{info.field_name} must be greater than 0 and at most {MAX_PRICE:.0e}"
            )
        return price

    @field_validator("confidence", mode="plain")
    @classmethod
    def _confidence(cls, value: object) -> float | None:
        if value is None:
            return None
        confidence = finite_number(value, "confidence")
        if not 0 <= confidence <= 100:
            raise ValueError("confidence must be between 0 and 100")
        return confidence

    @field_validator("indicators", mode="plain")
    @classmethod
    def _indicators(cls, value: object) -> dict[str, float]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("indicators must be an object of name: number")
        if len(value) > MAX_INDICATORS:
            raise ValueError(f"at most {MAX_INDICATORS} indicators")
        result: dict[str, float] = {}
        for name, number in value.items():
            if not _INDICATOR_NAME.match(name):
                raise ValueError(f"invalid indicator name {name[:40]!r}: 1-64 of A-Z a-z 0-9 _ . -")
            result[name] = finite_number(number, f"indicator {name!r}")
        return result

    @field_validator("timestamp", mode="plain")
    @classmethod
    def _timestamp(cls, value: object, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        window: ArrivalWindow = (info.context or {})["window"]
        return window.check(parse_timestamp(value))


class _Opinion(_Fields):
    """What one timeframe says: an action on a timeframe."""

    action: Action
    timeframe: Timeframe

    @field_validator("action", mode="plain")
    @classmethod
    def _action(cls, value: object) -> Action:
        return normalize_action(value)

    @field_validator("timeframe", mode="plain")
    @classmethod
    def _timeframe(cls, value: object) -> Timeframe:
        return normalize_timeframe(value)

    @model_validator(mode="after")
    def _exits_fit_the_action(self) -> _Opinion:
        """A buy's take-profit is above its stop-loss (and the price between); a sell's below."""
        direction = self.action.direction
        if direction == 0 and (self.take_profit is not None or self.stop_loss is not None):
            raise ValueError("take_profit and stop_loss need a buy or sell action")
        levels = [v for v in (self.stop_loss, self.price, self.take_profit) if v is not None]
        ordered = levels if direction > 0 else levels[::-1]
        if any(low >= high for low, high in pairwise(ordered)):
            side = "below" if direction > 0 else "above"
            raise ValueError(
                f"for a {self.action} the stop_loss must be {side} the price and the "
                f"take_profit on the other side"
            )
        return self


class _Symbol(BaseModel):
    """The ``symbol`` field, split into (exchange, ticker)."""

    symbol: tuple[str | None, str]

    @field_validator("symbol", mode="plain")
    @classmethod
    def _symbol(cls, value: object) -> tuple[str | None, str]:
        return split_symbol(value)


class _Sourced(BaseModel):
    """A required ``source`` field."""

    source: Source

    @field_validator("source", mode="plain")
    @classmethod
    def _source(cls, value: object) -> Source:
        return normalize_source(value)


class AlertIn(_Opinion, _Symbol, _Sourced):
    """``POST /webhook``: one symbol, one timeframe, one source."""


class MtfEntryIn(_Opinion):
    """One entry of an MTF alert; ``source`` and the optional fields default to the alert's."""

    source: Source | None = None

    @field_validator("source", mode="plain")
    @classmethod
    def _source(cls, value: object) -> Source | None:
        return None if value is None else normalize_source(value)


class MtfAlertIn(_Fields, _Symbol, _Sourced):
    """``POST /webhook/mtf``: one symbol, several timeframes, validated all-or-nothing."""

    signals: list[MtfEntryIn]

    @field_validator("signals", mode="before")
    @classmethod
    def _bounded(cls, value: object) -> object:
        if not isinstance(value, list) or not value:
            raise ValueError("signals must be a non-empty array")
        if len(value) > MAX_MTF_ENTRIES:
            raise ValueError(f"at most {MAX_MTF_ENTRIES} entries")
        return value


# --- from a validated alert to signals ----------------------------------------------------

SIGNAL_NAMESPACE: Final = uuid.UUID("6f1d3c52-8a43-4b8e-9f0e-4e7d7a1b2c3d")
"""Namespace of the deterministic (uuid5) signal ids: same alert, same id."""
_NAMESPACE_BYTES: Final = SIGNAL_NAMESPACE.bytes


def signal_id_of(identity: str) -> str:
    """``str(uuid.uuid5(SIGNAL_NAMESPACE, identity))``, without building a ``UUID`` on the way.

    The SHA-1 of namespace and name, cut to 16 bytes, with the version (5) and the RFC 4122
    variant bits set, written 8-4-4-4-12 in lower-case hex: what ``uuid5`` does, in a third
    of the time (it is on every webhook request).
    """
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + identity.encode(), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def bar_start(moment: datetime, timeframe: Timeframe) -> datetime:
    """Start of the UTC bar of ``timeframe`` containing ``moment`` (weeks start on Monday)."""
    epoch = int(moment.timestamp())
    origin = _FIRST_MONDAY if timeframe is Timeframe.W1 else 0
    return datetime.fromtimestamp(epoch - (epoch - origin) % timeframe.seconds, UTC)


_FIRST_MONDAY: Final = 4 * 86400  # 1970-01-05, the first Monday of the epoch


def _to_signal(
    symbol: tuple[str | None, str],
    defaults: _Fields,
    opinion: _Opinion,
    source: Source,
    window: ArrivalWindow,
) -> Signal:
    """Build the canonical signal; its id is derived from content, never from arrival."""
    exchange, ticker = symbol
    own_time = opinion.timestamp or defaults.timestamp
    key_time = own_time or bar_start(window.received_at, opinion.timeframe)
    identity = "|".join(
        (exchange or "", ticker, opinion.timeframe, opinion.action, source, key_time.isoformat())
    )
    return Signal(
        signal_id=signal_id_of(identity),
        symbol=ticker,
        exchange=exchange,
        action=opinion.action,
        timeframe=opinion.timeframe,
        source=source,
        price=_first(opinion.price, defaults.price),
        confidence=_first(opinion.confidence, defaults.confidence),
        indicators=opinion.indicators or defaults.indicators,
        take_profit=_first(opinion.take_profit, defaults.take_profit),
        stop_loss=_first(opinion.stop_loss, defaults.stop_loss),
        timestamp=own_time or window.received_at,
        key_time=key_time,
        received_at=window.received_at,
        ttl=int((window.received_at + window.retention).timestamp()),
    )


def _first(value: float | None, default: float | None) -> float | None:
    return default if value is None else value


def _problems(error: ValidationError) -> list[Problem]:
    """pydantic's errors as (field path, reason) pairs: ``signals[2].timeframe``."""
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ""
        for part in item["loc"]:
            field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else str(part)
        reason = "is required" if item["type"] == "missing" else item["msg"]
        problems.append(Problem(field or "body", reason.removeprefix("Value error, ")))
    return problems


_Model = TypeVar("_Model", bound=BaseModel)


def _validate(model: type[_Model], payload: dict[str, Any], window: ArrivalWindow) -> _Model:
    try:
        return model.model_validate(payload, context={"window": window})
    except ValidationError as exc:
        problems = _problems(exc)
        raise ValidationFailed(f"{len(problems)} problem(s) with the alert", problems) from None


def parse_alert(payload: dict[str, Any], window: ArrivalWindow) -> Signal:
    """Validate a single-timeframe alert and turn it into a canonical signal.

    Raises
    ------
    ValidationFailed
        Listing every problem found, each with its field and reason.
    """
    alert = _validate(AlertIn, payload, window)
    return _to_signal(alert.symbol, alert, alert, alert.source, window)


def parse_mtf_alert(payload: dict[str, Any], window: ArrivalWindow) -> list[Signal]:
    """Validate a multi-timeframe alert all-or-nothing: one signal per entry.

    Raises
    ------
    ValidationFailed
        Listing every problem, including entries that repeat a (timeframe, source) pair.
    """
    alert = _validate(MtfAlertIn, payload, window)
    signals = [
        _to_signal(alert.symbol, alert, entry, entry.source or alert.source, window)
        for entry in alert.signals
    ]
    first_index: dict[tuple[Timeframe, Source], int] = {}
    problems = []
    for index, signal in enumerate(signals):
        first = first_index.setdefault((signal.timeframe, signal.source), index)
        if first != index:
            reason = (
                f"repeats timeframe {signal.timeframe} and source {signal.source} "
                f"of signals[{first}]"
            )
            problems.append(Problem(f"signals[{index}]", reason))
    if problems:
        raise ValidationFailed(f"{len(problems)} problem(s) with the alert", problems)
    return signals


__all__ = [
    "ArrivalWindow",
    "MalformedJson",
    "PayloadTooLarge",
    "RequestRejected",
    "UnsupportedMediaType",
    "ValidationFailed",
    "check_media_type",
    "check_size",
    "parse_alert",
    "parse_mtf_alert",
    "pop_passphrase",
    "read_json_object",
]
