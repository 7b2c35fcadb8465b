"""``iso_utc``: the sortable rendering behind keys and payloads, the same as it always was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from kyperian.domain.models import Signal, iso_utc


def strftime_rendering(value: datetime) -> str:
    """The rendering as first written (``strftime``), kept here as the reference."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# Offsets as Python allows them: under a day either way, down to the microsecond.
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59, seconds=-59, microseconds=-999_999),
    max_value=timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
).map(timezone)
zones = st.none() | st.just(UTC) | offsets


@given(moment=st.datetimes(timezones=zones), fold=st.sampled_from([0, 1]))
@example(moment=datetime(5, 1, 1, 0, 0, 0, 999), fold=0)  # a year strftime leaves unpadded
@example(moment=datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), fold=0)
@example(moment=datetime(1000, 1, 1, tzinfo=UTC), fold=0)
@example(moment=datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), fold=1)
@example(moment=datetime(2026, 5, 1, 12, 0, 0, 999, tzinfo=timezone(timedelta(hours=5))), fold=0)
def test_the_rendering_is_the_strftime_one_for_every_datetime(moment: datetime, fold: int) -> None:
    # GIVEN any datetime: naive or with any offset, any microsecond, any year, either fold
    moment = moment.replace(fold=fold)
    # WHEN it is rendered
    # THEN the text is the one strftime wrote, character for character
    assert iso_utc(moment) == strftime_rendering(moment)


def test_a_signal_serializes_its_times_the_same_way() -> None:
    # GIVEN a signal whose times carry microseconds
    moment = datetime(2026, 11, 28, 22, 39, 48, 123_987, tzinfo=UTC)
    signal = Signal(
        signal_id="id",
        symbol="AAPL",
        action="BUY",
        timeframe="1h",
        source="luxalgo",
        timestamp=moment,
        key_time=moment.replace(minute=0, second=0, microsecond=0),
        received_at=moment,
        ttl=0,
    )
    # WHEN it is turned into its event detail
    detail = signal.to_event_detail()
    # THEN each time is cut (not rounded) to the millisecond, with a Z
    assert detail["timestamp"] == detail["received_at"] == "2026-11-28T22:39:48.123Z"
    assert detail["key_time"] == "2026-11-28T22:00:00.000Z"
