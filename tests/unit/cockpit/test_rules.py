"""The cockpit's and the notifier's rules: percentiles, ages, notice kinds and words, filters."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from kyperian.adapters.notify.channel import ChannelFilter
from kyperian.domain.notices import (
    DEFAULT_KINDS,
    NoticeKind,
    alarm_notice,
    alarm_worth_telling,
    decision_kind,
    decision_notice,
)
from kyperian.engine.ui.views import age_words, percentile
from kyperian.fusion import FusionRules, fuse
from tests.signal_factory import NOW, make_signal

latencies = st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1)


@given(latencies, st.floats(min_value=0.01, max_value=1))
def test_a_percentile_is_one_of_the_values_and_at_least_that_share_is_at_or_below(
    values: list[float], fraction: float
) -> None:
    # GIVEN any latencies  WHEN a nearest-rank percentile is taken
    found = percentile(values, fraction)
    # THEN it is an observed value, and at least `fraction` of the values are <= it
    assert found in values
    assert sum(v <= found for v in values) >= math.ceil(fraction * len(values))


@given(latencies)
def test_p50_never_exceeds_p99(values: list[float]) -> None:
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    assert p50 is not None
    assert p99 is not None
    assert p50 <= p99


def test_no_latencies_give_no_percentile() -> None:
    assert percentile([], 0.5) is None


def test_ages_are_written_in_their_largest_unit() -> None:
    assert [age_words(s) for s in (0, 59, 60, 3599, 3600, 86399, 86400 * 3, -5)] == [
        "0s", "59s", "1m", "59m", "1h", "23h", "3d", "0s",
    ]  # fmt: skip


def test_an_actionable_decision_is_a_decision_notice_with_its_numbers() -> None:
    # GIVEN aligned buys  WHEN the decision becomes a notice
    signals = [
        make_signal(timeframe="1D", action="BUY", age=timedelta(hours=1)),
        make_signal(timeframe="4h", action="STRONG_BUY", price=191.5),
    ]
    decision = fuse(signals, FusionRules(), NOW, symbol="AAPL", trigger=signals[-1])
    notice = decision_notice(signals[-1], decision)
    # THEN its kind, title and text say what a trader needs, and its id is stable
    assert decision.actionable
    assert notice.kind is NoticeKind.DECISION
    assert notice.title == f"AAPL: {decision.action.value.replace('_', ' ')}"
    assert f"size {decision.position_size:.2%}" in notice.text
    assert "4h STRONG_BUY from luxalgo at 191.5" in notice.text
    assert notice.notice_id == decision_notice(signals[-1], decision).notice_id


def test_a_vetoed_entry_is_a_veto_notice_with_each_reason() -> None:
    # GIVEN aligned buys whose confidence is below the floor (LOW_CONFIDENCE veto)
    signals = [
        make_signal(timeframe="1D", action="STRONG_BUY", confidence=30),
        make_signal(timeframe="4h", action="STRONG_BUY", confidence=30),
    ]
    decision = fuse(signals, FusionRules(), NOW, symbol="AAPL", trigger=signals[-1])
    notice = decision_notice(signals[-1], decision)
    # THEN it is a veto notice that spells out every veto
    assert decision.vetoes
    assert decision_kind(decision) is NoticeKind.VETO
    assert "vetoed" in notice.title
    for veto in decision.vetoes:
        assert f"veto: {veto.reason}" in notice.text


def test_waiting_for_an_anchor_is_not_a_veto_notice() -> None:
    # GIVEN a lone 15m buy (NO_ANCHOR: the engine waits for a 4h or 1D opinion)
    signal = make_signal(timeframe="15m", action="BUY")
    decision = fuse([signal], FusionRules(), NOW, symbol="AAPL", trigger=signal)
    # THEN it is an ordinary non-actionable decision, off by default
    assert [v.code.value for v in decision.vetoes] == ["NO_ANCHOR"]
    assert decision_kind(decision) is NoticeKind.DECISION_OTHER


def test_a_decision_without_an_opinion_is_off_by_default() -> None:
    signal = make_signal(timeframe="4h", action="NEUTRAL")
    decision = fuse([signal], FusionRules(), NOW, symbol="AAPL", trigger=signal)
    notice = decision_notice(signal, decision)
    assert notice.kind is NoticeKind.DECISION_OTHER
    assert not ChannelFilter().accepts(notice)
    assert ChannelFilter(kinds=frozenset(NoticeKind)).accepts(notice)
    assert NoticeKind.DECISION_OTHER not in DEFAULT_KINDS


def test_a_symbol_filter_keeps_other_symbols_out() -> None:
    signal = make_signal(timeframe="4h", action="STRONG_BUY", symbol="MSFT")
    decision = fuse([signal], FusionRules(), NOW, symbol="MSFT", trigger=signal)
    notice = decision_notice(signal, decision)
    assert ChannelFilter(kinds=frozenset(NoticeKind), symbols=frozenset({"MSFT"})).accepts(notice)
    assert not ChannelFilter(kinds=frozenset(NoticeKind), symbols=frozenset({"AAPL"})).accepts(
        notice
    )


alarm_states = st.sampled_from(["OK", "ALARM", "INSUFFICIENT_DATA"])


@given(alarm_states, alarm_states, st.booleans())
def test_an_alarm_change_is_news_exactly_when_it_enters_or_leaves_alarm(
    previous: str, current: str, fresh: bool
) -> None:
    # GIVEN a recorded state and a new one  WHEN the watcher asks whether to tell
    told = alarm_worth_telling(previous, current, fresh)
    # THEN only a real change into or out of ALARM is news, however old it is
    assert told == (previous != current and "ALARM" in (previous, current))


@given(alarm_states, st.booleans())
def test_an_alarm_seen_for_the_first_time_is_news_only_when_alarming_and_recent(
    current: str, fresh: bool
) -> None:
    assert alarm_worth_telling(None, current, fresh) == (current == "ALARM" and fresh)


def test_an_alarm_notice_names_the_alarm_the_change_and_the_runbook() -> None:
    # GIVEN an alarm that left ALARM, with CloudWatch's reason and its runbook link
    notice = alarm_notice(
        "kyperian-production-dlq-not-empty", "OK", "ALARM", "Threshold Crossed: 0 < 1",
        "Messages in the DLQ. Runbook: https://x/dlq-not-empty.md", NOW, "us-west-2",
    )  # fmt: skip
    # THEN it is an alarm notice, titled as resolved, with every line a person needs
    assert notice.kind is NoticeKind.ALARM
    assert notice.kind in DEFAULT_KINDS
    assert notice.title == "resolved: kyperian-production-dlq-not-empty (us-west-2) is OK"
    assert notice.text.splitlines() == [
        "was ALARM",
        "Threshold Crossed: 0 < 1",
        "Messages in the DLQ. Runbook: https://x/dlq-not-empty.md",
    ]
    # AND the same change always gives the same id (a dead letter can be matched), and the
    # same alarm name in the other region another
    again = alarm_notice(
        "kyperian-production-dlq-not-empty", "OK", "ALARM", "", "", NOW, "us-west-2"
    )
    assert again.notice_id == notice.notice_id
    primary = alarm_notice(
        "kyperian-production-dlq-not-empty", "OK", "ALARM", "", "", NOW, "us-east-1"
    )
    assert primary.notice_id != notice.notice_id
