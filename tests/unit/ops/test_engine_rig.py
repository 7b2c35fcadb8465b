"""The engine drills' alerts reach the engine as the real EventBridge delivery would."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from kyperian.engine.processor import parse_envelope
from kyperian.ops.engine_rig import envelope, strong_buy

_SYMBOLS = st.from_regex(r"[A-Z]{1,5}", fullmatch=True)
_MOMENTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@given(symbol=_SYMBOLS, received_at=_MOMENTS, timeframe=st.sampled_from(["1D", "4h", "15m"]))
def test_the_engine_reads_back_the_alert_the_drill_sends(
    symbol: str, received_at: datetime, timeframe: str
) -> None:
    # GIVEN a drill alert for any symbol, bar and timeframe (the wire carries milliseconds)
    received_at = received_at.replace(microsecond=received_at.microsecond // 1000 * 1000)
    signal = strong_buy(symbol, timeframe, "luxalgo", received_at, f"{symbol}-trigger")
    # WHEN it is wrapped as the SQS body the EventBridge rule delivers
    body = envelope(signal)
    # THEN the engine's own parser finds the same signal in it
    assert parse_envelope(body) == signal


def test_each_delivery_is_a_new_event() -> None:
    # GIVEN one alert enveloped twice (a republished signal)
    signal = strong_buy("AAPL", "4h", "luxalgo", datetime(2026, 11, 28, tzinfo=UTC), "a")
    first, second = json.loads(envelope(signal)), json.loads(envelope(signal))
    # THEN the event ids differ, the details do not
    assert first["id"] != second["id"]
    assert first["detail"] == second["detail"]
    assert first["detail-type"] == "SignalValidated"
