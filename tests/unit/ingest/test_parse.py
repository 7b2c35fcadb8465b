"""TradingView renderings and bad inputs, straight through the pure parsing layer."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyperian.adapters.aws.dynamodb import signal_to_item
from kyperian.domain.models import Action, Source, Timeframe
from kyperian.ingest.parse import (
    SIGNAL_NAMESPACE,
    ArrivalWindow,
    MalformedJson,
    PayloadTooLarge,
    RequestRejected,
    UnsupportedMediaType,
    ValidationFailed,
    bar_start,
    check_media_type,
    check_size,
    parse_alert,
    parse_mtf_alert,
    pop_passphrase,
    read_json_object,
    signal_id_of,
)

NOW = datetime(2026, 11, 24, 18, 30, 12, 345000, tzinfo=UTC)
WINDOW = ArrivalWindow.at(NOW, retention_days=7, skew_seconds=300)


def alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "symbol": "NASDAQ:AAPL",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        "price": 189.42,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def problems_of(payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        parse_alert(payload, WINDOW)
    return {p.field: p.reason for p in caught.value.problems}


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("15", Timeframe.M15),
        ("30", Timeframe.M30),
        ("60", Timeframe.H1),
        ("240", Timeframe.H4),
        ("D", Timeframe.D1),
        ("1D", Timeframe.D1),
        ("W", Timeframe.W1),
        ("1W", Timeframe.W1),
        ("15m", Timeframe.M15),
        ("1h", Timeframe.H1),
        ("4H", Timeframe.H4),
        (240, Timeframe.H4),
        (" 60 ", Timeframe.H1),
    ],
)
def test_tradingview_intervals_map_to_canonical_timeframes(
    rendered: object, expected: Timeframe
) -> None:
    # GIVEN an alert whose {{interval}} rendered as TradingView renders it
    # WHEN it is parsed
    signal = parse_alert(alert(timeframe=rendered), WINDOW)
    # THEN the signal carries the canonical timeframe
    assert signal.timeframe is expected


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("buy", Action.BUY),
        ("sell", Action.SELL),
        ("BUY", Action.BUY),
        ("Strong_Buy", Action.STRONG_BUY),
        ("strong buy", Action.STRONG_BUY),
        ("strong-sell", Action.STRONG_SELL),
        ("neutral", Action.NEUTRAL),
        ("wait", Action.WAIT),
        ("long", Action.BUY),
        ("short", Action.SELL),
        ("flat", Action.NEUTRAL),
    ],
)
def test_actions_are_case_insensitive_and_accept_tradingview_renderings(
    rendered: str, expected: Action
) -> None:
    assert parse_alert(alert(action=rendered), WINDOW).action is expected


def test_a_full_alert_is_normalized_and_enriched() -> None:
    # GIVEN the specification's payload as TradingView renders it, numbers sent as text
    payload = alert(
        symbol="nasdaq:aapl",
        source="LuxAlgo",
        price="189.42",
        confidence="85",
        indicators={"rsi": "61.2", "macd": 0.84},
    )
    # WHEN it is parsed
    signal = parse_alert(payload, WINDOW)
    # THEN the fields are canonical, and id/received-at/TTL are added
    assert (signal.exchange, signal.symbol) == ("NASDAQ", "AAPL")
    assert signal.source is Source.LUXALGO
    assert signal.price == pytest.approx(189.42)
    assert signal.confidence == 85
    assert signal.indicators == {"rsi": 61.2, "macd": 0.84}
    assert signal.received_at == NOW
    assert signal.timestamp == NOW
    assert signal.ttl == int((NOW + timedelta(days=7)).timestamp())
    assert len(signal.signal_id) == 36


def test_symbol_without_exchange_prefix() -> None:
    signal = parse_alert(alert(symbol="btcusdt.p"), WINDOW)
    assert (signal.exchange, signal.symbol) == (None, "BTCUSDT.P")


def test_same_alert_delivered_twice_gets_the_same_id() -> None:
    # GIVEN one alert without its own timestamp, delivered twice within the same 4h bar
    later = ArrivalWindow.at(NOW + timedelta(minutes=3), 7, 300)
    # WHEN both deliveries are parsed
    first, second = parse_alert(alert(), WINDOW), parse_alert(alert(), later)
    # THEN they share id and key time (the bar start), so storage sees one signal
    assert first.signal_id == second.signal_id
    assert first.key_time == second.key_time == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_different_content_or_bar_gives_different_ids() -> None:
    base = parse_alert(alert(), WINDOW)
    next_bar = ArrivalWindow.at(NOW + timedelta(hours=4), 7, 300)
    assert parse_alert(alert(action="sell"), WINDOW).signal_id != base.signal_id
    assert parse_alert(alert(source="ai"), WINDOW).signal_id != base.signal_id
    assert parse_alert(alert(), next_bar).signal_id != base.signal_id


def test_alert_timestamp_is_the_identity_when_given() -> None:
    # GIVEN {{timenow}} rendered in the alert
    stamped = alert(timestamp="2026-11-24T18:29:00Z")
    # WHEN delivered twice, minutes apart
    first = parse_alert(stamped, WINDOW)
    again = parse_alert(stamped, ArrivalWindow.at(NOW + timedelta(minutes=2), 7, 300))
    # THEN the alert's time is the event time and the identity
    assert first.signal_id == again.signal_id
    assert first.timestamp == first.key_time == datetime(2026, 11, 24, 18, 29, tzinfo=UTC)


@pytest.mark.parametrize(
    "rendered",
    ["2026-11-24T18:29:00Z", "2026-11-24T19:29:00+01:00", "1795544940", 1795544940000, 1795544940],
)
def test_timestamp_renderings(rendered: object) -> None:
    signal = parse_alert(alert(timestamp=rendered), WINDOW)
    assert signal.timestamp == datetime(2026, 11, 24, 18, 29, tzinfo=UTC)


def test_weekly_bars_start_on_monday_utc() -> None:
    assert bar_start(NOW, Timeframe.W1) == datetime(2026, 11, 23, tzinfo=UTC)
    assert bar_start(NOW, Timeframe.D1) == datetime(2026, 11, 24, tzinfo=UTC)
    assert bar_start(NOW, Timeframe.M15) == datetime(2026, 11, 24, 18, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "field", "reason_part"),
    [
        (alert(symbol=None), "symbol", "is required"),
        (alert(action=None), "action", "is required"),
        (alert(source=None), "source", "is required"),
        (alert(timeframe=None), "timeframe", "is required"),
        (alert(action="hold"), "action", "unsupported action 'hold'"),
        (alert(timeframe="120"), "timeframe", "unsupported timeframe '120'"),
        (alert(timeframe="5"), "timeframe", "supported: 15m, 30m, 1h, 4h, 1D, 1W"),
        (alert(source="tradingview"), "source", "unsupported source"),
        (alert(symbol="{{ticker}}"), "symbol", "unrendered TradingView placeholder {{ticker}}"),
        (alert(symbol="AA PL"), "symbol", "invalid symbol"),
        (alert(symbol=""), "symbol", "must not be empty"),
        (alert(symbol=42), "symbol", "must be a string"),
        (alert(price=0), "price", "greater than 0"),
        (alert(price=-1), "price", "greater than 0"),
        (alert(price=1e13), "price", "at most"),
        (alert(price=1e300), "price", "below 1E+126"),
        (alert(price="abc"), "price", "must be a number"),
        (alert(price=True), "price", "not a boolean"),
        (alert(price=float("nan")), "price", "finite"),
        (alert(price=float("inf")), "price", "finite"),
        (alert(price="{{close}}"), "price", "placeholder {{close}}"),
        (alert(price=[1]), "price", "must be a number"),
        (alert(confidence=101), "confidence", "between 0 and 100"),
        (alert(confidence=-0.1), "confidence", "between 0 and 100"),
        (alert(indicators={"rsi": "NaN"}), "indicators", "finite"),
        (alert(indicators={"rsi": {"deep": 1}}), "indicators", "must be a number"),
        (alert(indicators=[1, 2]), "indicators", "object of name: number"),
        (alert(indicators={f"i{n}": n for n in range(33)}), "indicators", "at most 32"),
        (alert(indicators={"bad name": 1}), "indicators", "invalid indicator name"),
        (alert(timestamp="yesterday"), "timestamp", "not an ISO 8601 time"),
        (alert(timestamp="2026-11-25T18:30:00Z"), "timestamp", "in the future"),
        (alert(timestamp="2026-11-01T00:00:00Z"), "timestamp", "older than"),
        (alert(timestamp=-5), "timestamp", "out of range"),
        # values that used to escape as OverflowError (a 5xx)
        (alert(price=10**400), "price", "too large"),
        (alert(timestamp="0001-01-01T00:00:00+14:00"), "timestamp", "out of range"),
        (alert(timestamp="9999-12-31T23:59:59-14:00"), "timestamp", "out of range"),
        # numbers DynamoDB cannot store: refused here, not by the table (a 503 forever)
        (alert(price=1e-200), "price", "at least 1E-130"),
        (alert(price=5e-324), "price", "at least 1E-130"),
        (alert(confidence=1e-131), "confidence", "at least 1E-130"),
        (alert(indicators={"rsi": 1e126}), "indicators", "below 1E+126"),
        (alert(indicators={"rsi": -1e200}), "indicators", "below 1E+126"),
        (alert(indicators={"rsi": "-1e-300"}), "indicators", "at least 1E-130"),
    ],
)
def test_bad_fields_are_named_with_a_reason(
    payload: dict[str, Any], field: str, reason_part: str
) -> None:
    # GIVEN an alert with one bad field; WHEN parsed; THEN a 400 names the field and why
    problems = problems_of(payload)
    assert field in problems
    assert reason_part in problems[field]


def test_storable_edges_and_long_decimals_are_accepted() -> None:
    # GIVEN numbers at DynamoDB's limits and one with 50 significant digits
    payload = alert(
        confidence=0,
        indicators={"tiny": 1e-130, "big": 9.99e125, "neg": -1e-130, "zero": -0.0},
        price="189.42000000000000000000000000000000000000000000001",
    )
    # WHEN parsed; THEN accepted, the long decimal rounded to a double
    signal = parse_alert(payload, WINDOW)
    assert signal.price == 189.42
    assert signal.indicators["big"] == 9.99e125


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({"symbol": "{{ticker}}", "action": "hold", "price": "x"})
    assert set(problems) == {"symbol", "action", "source", "timeframe", "price"}


def test_unknown_fields_are_ignored() -> None:
    assert parse_alert(alert(strategy="my strat", comment="hi"), WINDOW).symbol == "AAPL"


# --- body decoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason_part"),
    [
        (b"", "expected a JSON object"),
        (b"   ", "expected a JSON object"),
        (b'{"symbol": "AAPL",', "at line 1"),
        (b"[1, 2]", "got an array"),
        (b'"text"', "got a string"),
        (b"42", "got a number"),
        (b"null", "got null"),
        (b"\xff\xfe{}", "invalid UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"price": ' + b"9" * 5000 + b"}", "digits"),
    ],
)
def test_malformed_bodies_are_explained(body: bytes, reason_part: str) -> None:
    with pytest.raises(MalformedJson) as caught:
        read_json_object(body)
    assert caught.value.status == 400
    assert reason_part in caught.value.problems[0].reason


def test_unrendered_placeholder_is_named_with_its_line() -> None:
    # GIVEN the specification's template where the chart has no RSI, so {{rsi}} stays raw
    body = b'{\n "symbol": "AAPL",\n "indicators": {"rsi": {{rsi}}, "macd": 0.1}\n}'
    # WHEN it is read
    with pytest.raises(MalformedJson) as caught:
        read_json_object(body)
    # THEN the error names the placeholder and where it is
    assert "{{rsi}}" in caught.value.message
    assert "line 3" in caught.value.message


def test_size_limit_and_media_types() -> None:
    check_size(b"x" * 16384, 16384)
    with pytest.raises(PayloadTooLarge) as caught:
        check_size(b"x" * 16385, 16384)
    assert caught.value.status == 413
    for accepted in ("application/json", "text/plain; charset=utf-8", None, "Application/JSON"):
        check_media_type(accepted)
    with pytest.raises(UnsupportedMediaType):
        check_media_type("application/x-www-form-urlencoded")


def test_passphrase_is_removed_before_validation() -> None:
    payload = alert(passphrase="s3cret")
    assert pop_passphrase(payload) == "s3cret"
    assert "passphrase" not in payload
    assert "s3cret" not in parse_alert(payload, WINDOW).model_dump_json()


# --- multi-timeframe ----------------------------------------------------------------------


def mtf(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "symbol": "NASDAQ:AAPL",
        "source": "luxalgo",
        "price": 189.42,
        "signals": [
            {"timeframe": "W", "action": "buy", "confidence": 80},
            {"timeframe": "D", "action": "buy"},
            {"timeframe": "240", "action": "strong_buy", "source": "momentum"},
        ],
    }
    base.update(fields)
    return base


def test_mtf_alert_becomes_one_signal_per_timeframe_with_defaults() -> None:
    signals = parse_mtf_alert(mtf(), WINDOW)
    assert [s.timeframe for s in signals] == [Timeframe.W1, Timeframe.D1, Timeframe.H4]
    assert [s.source for s in signals] == [Source.LUXALGO, Source.LUXALGO, Source.MOMENTUM]
    assert [s.confidence for s in signals] == [80, None, None]
    assert {s.price for s in signals} == {189.42}
    assert len({s.signal_id for s in signals}) == 3


def test_mtf_is_all_or_nothing_with_indexed_fields() -> None:
    payload = mtf(signals=[{"timeframe": "W", "action": "buy"}, {"timeframe": "7", "action": "x"}])
    with pytest.raises(ValidationFailed) as caught:
        parse_mtf_alert(payload, WINDOW)
    fields = {p.field for p in caught.value.problems}
    assert fields == {"signals[1].timeframe", "signals[1].action"}


@pytest.mark.parametrize(
    ("signals", "field"),
    [
        ([], "signals"),
        ("1W", "signals"),
        ([{"timeframe": "1W", "action": "buy"}] * 11, "signals"),
        (
            [{"timeframe": "W", "action": "buy"}, {"timeframe": "1W", "action": "sell"}],
            "signals[1]",
        ),
    ],
)
def test_mtf_bad_entries(signals: object, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_mtf_alert(mtf(signals=signals), WINDOW)
    assert field in {p.field for p in caught.value.problems}


# --- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.sampled_from(["buy", "SELL", "240", "D", "luxalgo", "AAPL", "{{close}}", "1e999", ""]),
)
alerts = st.dictionaries(
    st.sampled_from(
        [
            "symbol",
            "action",
            "source",
            "timeframe",
            "price",
            "confidence",
            "indicators",
            "timestamp",
            "signals",
            "extra",
        ]
    ),
    field_values,
)


@given(alerts)
def test_any_alert_either_parses_or_is_rejected_cleanly(payload: dict[str, Any]) -> None:
    # GIVEN any JSON object; WHEN parsed; THEN a valid signal or a listed 400, nothing else
    try:
        signal = parse_alert(dict(payload), WINDOW)
    except ValidationFailed as exc:
        assert exc.problems
        assert all(p.field and p.reason for p in exc.problems)
    else:
        assert signal.price is None or (math.isfinite(signal.price) and signal.price > 0)
        assert signal.symbol == signal.symbol.upper()


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_body_reads_as_an_object_or_a_clear_400(body: bytes) -> None:
    try:
        value = read_json_object(body)
    except RequestRejected as exc:
        assert exc.status == 400
        assert exc.problems
    else:
        assert isinstance(value, dict)
        assert body.strip().startswith((b"{", b"\xef\xbb\xbf"))


def _dynamo_storable(text: str) -> bool:
    """DynamoDB's number rule: up to 38 significant digits, magnitude 0 or 1E-130..<1E+126."""
    number = Decimal(text)
    digits = number.normalize().as_tuple().digits
    return len(digits) <= 38 and (
        number == 0 or Decimal("1E-130") <= abs(number) < Decimal("1E+126")
    )


storable_probe = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**200), max_value=10**200),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)


@given(price=storable_probe, confidence=storable_probe, indicator=storable_probe)
def test_every_number_accepted_is_one_dynamodb_can_store(
    price: object, confidence: object, indicator: object
) -> None:
    # GIVEN numbers of any magnitude and precision in every numeric field
    payload = alert(price=price, confidence=confidence, indicators={"x": indicator})
    # WHEN the alert is accepted, THEN every number in its stored item fits DynamoDB
    # (moto does not enforce these limits, so this is checked here)
    try:
        signal = parse_alert(payload, WINDOW)
    except ValidationFailed:
        return
    item = signal_to_item(signal)
    numbers = [item["price"]["N"], item["confidence"]["N"], item["indicators"]["M"]["x"]["N"]]
    assert all(_dynamo_storable(n) for n in numbers), numbers


@given(identity=st.text())
def test_signal_ids_are_the_uuid5_of_the_identity(identity: str) -> None:
    # GIVEN any identity text (surrogates included: both refuse them alike)
    try:
        expected = str(uuid.uuid5(SIGNAL_NAMESPACE, identity))
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            signal_id_of(identity)
        return
    # THEN the id is exactly the standard library's uuid5 of it
    assert signal_id_of(identity) == expected
