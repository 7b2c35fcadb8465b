"""Fusion on hand-made inputs: the documented example and each rule on its own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kyperian.domain.decisions import VetoCode
from kyperian.domain.models import Action
from kyperian.fusion import FusionRules, fuse
from tests.signal_factory import NOW, documented_signals, make_signal

RULES = FusionRules()


def test_worked_example_from_docs() -> None:
    # GIVEN the five signals of docs/fusion.md section 7 and default rules
    signals = documented_signals()

    # WHEN they are fused at 15:00
    decision = fuse(signals, RULES, NOW, symbol="AAPL", trigger=signals[3])

    # THEN the numbers are the documented ones
    assert decision.action is Action.BUY
    assert decision.score == pytest.approx(2.875 / 9)
    assert decision.score == pytest.approx(0.3194, abs=5e-5)
    assert decision.confidence == pytest.approx((6.8 / 9) * (2.875 / 4.075))
    assert decision.confidence == pytest.approx(0.5331, abs=5e-5)
    assert decision.position_size == pytest.approx(0.03406, abs=5e-6)
    assert decision.vetoes == ()
    # AND the stale 15m signal is not among those used, highest timeframe first
    assert decision.signal_ids == ("s1", "s2", "s3", "s4")
    assert [v.timeframe for v in decision.timeframes] == ["1D", "4h", "1h"]
    assert [v.score for v in decision.timeframes] == pytest.approx([0.4, 0.625, -0.3])
    # AND the reference price is the freshest used signal's
    assert decision.price == 194


def test_worked_example_with_exposure_is_vetoed_by_both_risk_limits() -> None:
    # GIVEN the documented signals and an open long of 14 % of equity
    signals = documented_signals()

    # WHEN they are fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL", exposure=0.14)

    # THEN the same BUY is proposed but vetoed twice, with size zero
    assert decision.action is Action.BUY
    assert {v.code for v in decision.vetoes} == {VetoCode.MAX_POSITION_SIZE, VetoCode.MAX_EXPOSURE}
    assert decision.position_size == 0
    assert not decision.actionable


def test_worked_example_with_a_weekly_sell_is_neutral() -> None:
    # GIVEN the documented signals plus a weekly SELL at confidence 70
    weekly = make_signal(
        timeframe="1W", source="ai", action="SELL", confidence=70, at=NOW.replace(hour=0)
    )

    # WHEN they are fused
    decision = fuse([*documented_signals(), weekly], RULES, NOW, symbol="AAPL")

    # THEN the weekly vote pulls the score to 1.125 / 14 and nothing is traded
    assert decision.score == pytest.approx(1.125 / 14)
    assert decision.action is Action.NEUTRAL
    assert decision.position_size == 0


def test_no_fresh_anchor_means_wait() -> None:
    # GIVEN strong lower-timeframe signals but nothing fresh on 4h or 1D
    signals = [
        make_signal(timeframe="1h", action="STRONG_BUY", confidence=100),
        make_signal(timeframe="15m", action="STRONG_BUY", confidence=100),
        make_signal(timeframe="4h", action="STRONG_BUY", confidence=100, age=timedelta(hours=9)),
    ]

    # WHEN they are fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN the engine waits, says why, and sizes nothing
    assert decision.action is Action.WAIT
    assert [v.code for v in decision.vetoes] == [VetoCode.NO_ANCHOR]
    assert "4h" in decision.vetoes[0].reason
    assert decision.position_size == 0


def test_no_signals_at_all_means_wait() -> None:
    # GIVEN nothing  WHEN fused  THEN WAIT with a score of zero
    decision = fuse([], RULES, NOW, symbol="AAPL")
    assert decision.action is Action.WAIT
    assert decision.score == 0
    assert decision.signal_ids == ()


def test_stale_signals_do_not_count() -> None:
    # GIVEN a fresh 4h BUY and a 1D STRONG_SELL just past its 24 h lifetime
    signals = [
        make_signal(timeframe="4h", action="BUY", confidence=100),
        make_signal(
            timeframe="1D", action="STRONG_SELL", confidence=100, age=timedelta(hours=24, seconds=1)
        ),
    ]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN only the 4h vote is used
    assert [v.timeframe for v in decision.timeframes] == ["4h"]
    assert decision.score == pytest.approx(0.5)


def test_a_newer_signal_replaces_an_older_one_of_the_same_slot() -> None:
    # GIVEN an older 4h luxalgo SELL and a newer 4h luxalgo BUY
    old = make_signal(timeframe="4h", action="SELL", age=timedelta(hours=2))
    new = make_signal(timeframe="4h", action="BUY", age=timedelta(hours=1))

    # WHEN fused in either order
    decisions = [fuse(order, RULES, NOW, symbol="AAPL") for order in ([old, new], [new, old])]

    # THEN the newer one decides, whatever the order
    assert all(d.signal_ids == (new.signal_id,) for d in decisions)


def test_higher_timeframe_against_the_entry_vetoes_it() -> None:
    # GIVEN a strong 4h and 1h BUY but a weaker 1D SELL above them
    signals = [
        make_signal(timeframe="1D", source="technicals", action="SELL", confidence=30),
        make_signal(timeframe="4h", action="STRONG_BUY", confidence=100),
        make_signal(timeframe="1h", action="STRONG_BUY", confidence=100),
    ]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN the BUY stands as proposed but the 1D conflict vetoes it
    assert decision.action.direction == 1
    conflicts = [v for v in decision.vetoes if v.code is VetoCode.HIGHER_TIMEFRAME_CONFLICT]
    assert [v.timeframe for v in conflicts] == ["1D"]
    assert "1D votes SELL" in conflicts[0].reason
    assert decision.position_size == 0


def test_a_4h_buy_under_a_weekly_sell_is_vetoed_even_when_fusion_stays_neutral() -> None:
    # GIVEN a weekly SELL and then a 4h BUY alert (the trigger)
    weekly = make_signal(timeframe="1W", source="technicals", action="SELL", confidence=80)
    four_hour = make_signal(timeframe="4h", source="technicals", action="BUY", confidence=80)

    # WHEN fused on the 4h alert's arrival
    decision = fuse([weekly, four_hour], RULES, NOW, symbol="AAPL", trigger=four_hour)

    # THEN the weekly outweighs it (NEUTRAL) and the 4h entry is recorded as vetoed by 1W
    assert decision.action is Action.NEUTRAL
    assert decision.position_size == 0
    [veto] = decision.vetoes
    assert (veto.code, veto.timeframe) == (VetoCode.HIGHER_TIMEFRAME_CONFLICT, "1W")
    assert veto.reason == "1W votes SELL (score -0.400) against a BUY entry timed on 4h"


def test_an_undirected_trigger_records_no_veto() -> None:
    # GIVEN the same weekly SELL, but a NEUTRAL 4h trigger
    weekly = make_signal(timeframe="1W", source="technicals", action="SELL", confidence=80)
    flat = make_signal(timeframe="4h", source="technicals", action="NEUTRAL", confidence=80)

    # WHEN fused  THEN nothing was proposed, so nothing is vetoed
    assert fuse([weekly, flat], RULES, NOW, symbol="AAPL", trigger=flat).vetoes == ()


def test_a_lower_timeframe_pullback_does_not_veto() -> None:
    # GIVEN a 1D and 4h BUY and a 15m SELL below them
    signals = [
        make_signal(timeframe="1D", source="technicals", action="STRONG_BUY", confidence=90),
        make_signal(timeframe="4h", action="BUY", confidence=90),
        make_signal(timeframe="15m", action="SELL", confidence=90),
    ]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN no conflict veto is raised
    assert decision.action.direction == 1
    assert VetoCode.HIGHER_TIMEFRAME_CONFLICT not in {v.code for v in decision.vetoes}


def test_low_confidence_vetoes_the_entry() -> None:
    # GIVEN a unanimous BUY from low-confidence alerts
    signals = [make_signal(timeframe=tf, action="STRONG_BUY", confidence=40) for tf in ("1D", "4h")]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN the score is enough for a BUY but the confidence floor vetoes it
    assert decision.action is Action.BUY
    assert [v.code for v in decision.vetoes] == [VetoCode.LOW_CONFIDENCE]


def test_strong_unanimous_signals_give_a_strong_capped_entry() -> None:
    # GIVEN every timeframe at STRONG_SELL with full confidence
    signals = [
        make_signal(timeframe=tf, action="STRONG_SELL", confidence=100)
        for tf in ("1W", "1D", "4h", "1h", "30m", "15m")
    ]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL")

    # THEN it is a STRONG_SELL at the maximum position size
    assert decision.action is Action.STRONG_SELL
    assert decision.score == pytest.approx(-1.0)
    assert decision.confidence == pytest.approx(1.0)
    assert decision.position_size == RULES.max_position_size
    assert decision.actionable


def test_a_sell_that_reduces_a_long_is_not_vetoed_by_risk_limits() -> None:
    # GIVEN strong SELL signals while the symbol is 20 % long (over every limit)
    signals = [
        make_signal(timeframe=tf, action="STRONG_SELL", confidence=100) for tf in ("1D", "4h")
    ]

    # WHEN fused
    decision = fuse(signals, RULES, NOW, symbol="AAPL", exposure=0.20)

    # THEN the SELL goes through
    assert decision.actionable


def test_missing_confidence_uses_the_default() -> None:
    # GIVEN a 4h STRONG_BUY without confidence and a rule default of 0.8
    rules = FusionRules(default_signal_confidence=0.8)
    signals = [make_signal(timeframe="4h", action="STRONG_BUY", confidence=None)]

    # WHEN fused  THEN the vote is 1.0 x 0.8
    assert fuse(signals, rules, NOW, symbol="AAPL").score == pytest.approx(0.8)


def test_the_decision_id_and_sort_time_are_stable_per_trigger() -> None:
    # GIVEN the same trigger fused twice at different times
    signals = documented_signals()
    first = fuse(signals, RULES, NOW, symbol="AAPL", trigger=signals[3])
    later = fuse(signals, RULES, NOW + timedelta(seconds=30), symbol="AAPL", trigger=signals[3])

    # THEN both carry the same id and sort time (a broker and the table dedupe on them)
    assert first.decision_id == later.decision_id
    assert first.sort_time == later.sort_time == signals[3].received_at
    # AND another trigger gives another id
    other = fuse(signals, RULES, NOW, symbol="AAPL", trigger=signals[0])
    assert other.decision_id != first.decision_id


def test_naive_times_are_read_as_utc() -> None:
    # GIVEN a signal built in code with naive times (UTC by convention) and an aware one
    naive = make_signal(timeframe="1D", source="technicals", at=NOW.replace(tzinfo=None))
    aware = make_signal(timeframe="4h", age=timedelta(hours=1))

    # WHEN fused together  THEN both count, as if the naive one were UTC
    decision = fuse([naive, aware], RULES, NOW, symbol="AAPL")
    assert set(decision.signal_ids) == {naive.signal_id, aware.signal_id}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"now": NOW.replace(tzinfo=None)}, "timezone-aware"),
        ({"exposure": float("nan")}, "finite"),
        ({"symbol": "MSFT"}, "MSFT"),
    ],
)
def test_programming_errors_are_refused(kwargs: dict[str, object], message: str) -> None:
    # GIVEN arguments no caller should pass  WHEN fused  THEN a ValueError says which
    arguments: dict[str, object] = {"now": NOW, "symbol": "AAPL", "exposure": 0.0} | kwargs
    with pytest.raises(ValueError, match=message):
        fuse(documented_signals(), RULES, **arguments)  # type: ignore[arg-type]
