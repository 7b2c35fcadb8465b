"""``Signal.to_event_detail``: written out, and still exactly what pydantic's JSON dump gives."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.models import Action, Signal, Source, Timeframe

optional_floats = st.none() | st.floats(allow_nan=True, allow_infinity=True)
positive = st.none() | st.floats(min_value=0, exclude_min=True, allow_infinity=True)
times = st.datetimes() | st.datetimes(timezones=st.timezones())
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "signal_id": st.text(),
    "symbol": st.text(),
    "exchange": st.none() | st.text(),
    "action": st.sampled_from(Action) | st.sampled_from([a.value for a in Action]),
    "timeframe": st.sampled_from(Timeframe),
    "source": st.sampled_from(Source),
    "price": optional_floats | st.integers(-(2**53), 2**53),
    "confidence": st.none() | st.floats(0, 100) | st.integers(0, 100),
    "indicators": st.dictionaries(st.text(max_size=8), st.floats() | st.integers(-100, 100)),
    "take_profit": positive,
    "stop_loss": positive,
    "timestamp": times,
    "key_time": times,
    "received_at": times,
    "ttl": st.integers(-(2**63), 2**63) | st.booleans(),
}


def test_the_strategy_covers_every_field_of_a_signal() -> None:
    # GIVEN the fields below  THEN they are all of Signal's: a new field joins the comparison
    assert set(FIELDS) == set(Signal.model_fields)


@given(signal=st.fixed_dictionaries(FIELDS).map(lambda fields: Signal(**fields)))
def test_the_detail_is_pydantics_json_dump(signal: Signal) -> None:
    # GIVEN any signal (any text, floats with infinities and NaN, times naive or zoned)
    # WHEN its event detail is built
    detail = signal.to_event_detail()
    expected = signal.model_dump(mode="json")
    # THEN it has the same keys in the same order, the same values of the same types,
    # and it encodes to the same JSON text
    assert list(detail) == list(expected)
    assert [type(v) for v in detail.values()] == [type(v) for v in expected.values()]
    assert json.dumps(detail) == json.dumps(expected)
    assert detail["indicators"] is not signal.indicators  # a copy, as pydantic's
