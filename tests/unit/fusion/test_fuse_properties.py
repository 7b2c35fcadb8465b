"""Properties fusion must keep for every input, checked on generated signals."""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kyperian.domain.models import Action, Signal, Source, Timeframe
from kyperian.fusion import FusionRules, fuse
from tests.signal_factory import NOW, make_signal

RULES = FusionRules()
_MIRROR = {
    Action.BUY: Action.SELL,
    Action.SELL: Action.BUY,
    Action.STRONG_BUY: Action.STRONG_SELL,
    Action.STRONG_SELL: Action.STRONG_BUY,
    Action.NEUTRAL: Action.NEUTRAL,
    Action.WAIT: Action.WAIT,
}


@st.composite
def signal_sets(draw: st.DrawFn) -> list[Signal]:
    """Up to 14 signals of one symbol: any slot, action, confidence, age (fresh or stale)."""
    count = draw(st.integers(min_value=0, max_value=14))
    signals = []
    for index in range(count):
        signals.append(
            make_signal(
                signal_id=f"p{index:02d}",
                timeframe=draw(st.sampled_from(list(Timeframe))),
                source=draw(st.sampled_from(list(Source))),
                action=draw(st.sampled_from(list(Action))),
                confidence=draw(st.none() | st.floats(min_value=0, max_value=100)),
                price=draw(st.none() | st.floats(min_value=0.01, max_value=1e6)),
                age=timedelta(seconds=draw(st.integers(min_value=-3600, max_value=9 * 86400))),
            )
        )
    return signals


exposures = st.floats(min_value=-1, max_value=1)


def _trigger(signals: list[Signal], data: st.DataObject) -> Signal | None:
    """No trigger, or one of the signals (the one whose arrival caused the decision)."""
    if not signals:
        return None
    index = data.draw(st.none() | st.integers(min_value=0, max_value=len(signals) - 1))
    return None if index is None else signals[index]


def _mirrored(signal: Signal) -> Signal:
    return signal.model_copy(update={"action": _MIRROR[signal.action]})


@settings(max_examples=200, deadline=None)
@given(signals=signal_sets(), exposure=exposures, data=st.data())
def test_no_input_raises_and_every_number_stays_in_range(
    signals: list[Signal], exposure: float, data: st.DataObject
) -> None:
    # GIVEN any signals, exposure and trigger  WHEN fused
    trigger = _trigger(signals, data)
    decision = fuse(signals, RULES, NOW, symbol="AAPL", exposure=exposure, trigger=trigger)

    # THEN the decision is well formed: bounded numbers, size only for unvetoed entries
    assert -1 <= decision.score <= 1
    assert 0 <= decision.confidence <= 1
    assert 0 <= decision.position_size <= RULES.max_position_size
    if decision.vetoes or decision.action.direction == 0:
        assert decision.position_size == 0
    assert len(set(decision.signal_ids)) == len(decision.signal_ids)
    # AND it is a valid decision by its own model's rules (it round-trips through JSON)
    assert type(decision).model_validate_json(decision.model_dump_json()) == decision


@settings(max_examples=200, deadline=None)
@given(signals=signal_sets(), exposure=exposures, data=st.data())
def test_mirrored_inputs_give_mirrored_decisions(
    signals: list[Signal], exposure: float, data: st.DataObject
) -> None:
    # GIVEN signals (one maybe the trigger) and their mirror image, exposure negated
    trigger = _trigger(signals, data)
    original = fuse(signals, RULES, NOW, symbol="AAPL", exposure=exposure, trigger=trigger)

    # WHEN the mirror image is fused
    mirrored = [_mirrored(s) for s in signals]
    mirror_trigger = _mirrored(trigger) if trigger else None
    mirror = fuse(mirrored, RULES, NOW, symbol="AAPL", exposure=-exposure, trigger=mirror_trigger)

    # THEN the decision is the mirror image: opposite score and action, same size and vetoes
    assert mirror.score == -original.score
    assert mirror.action is _MIRROR[original.action]
    assert mirror.confidence == original.confidence
    assert mirror.position_size == original.position_size
    assert [v.code for v in mirror.vetoes] == [v.code for v in original.vetoes]


@settings(max_examples=200, deadline=None)
@given(signals=signal_sets().filter(bool), data=st.data())
def test_a_more_bullish_input_never_lowers_the_score(
    signals: list[Signal], data: st.DataObject
) -> None:
    # GIVEN some signals, and the same signals with one made more bullish
    index = data.draw(st.integers(min_value=0, max_value=len(signals) - 1))
    current = signals[index].action
    stronger = data.draw(st.sampled_from([a for a in Action if a.strength >= current.strength]))
    changed = [*signals]
    changed[index] = signals[index].model_copy(update={"action": stronger})

    # WHEN both are fused
    before = fuse(signals, RULES, NOW, symbol="AAPL").score
    after = fuse(changed, RULES, NOW, symbol="AAPL").score

    # THEN the score did not fall
    assert after >= before or math.isclose(after, before, abs_tol=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    signals=signal_sets(),
    rules=st.builds(
        FusionRules,
        entry_threshold=st.floats(min_value=0.01, max_value=0.5),
        strong_threshold=st.floats(min_value=0.5, max_value=1),
        min_confidence=st.floats(min_value=0, max_value=1),
        risk_per_trade=st.floats(min_value=0.001, max_value=1),
        stop_distance=st.floats(min_value=0.001, max_value=1),
        max_position_size=st.floats(min_value=0.01, max_value=0.5),
        max_symbol_exposure=st.just(1.0),
    ),
)
def test_sizes_stay_within_the_configured_cap_for_any_rules(
    signals: list[Signal], rules: FusionRules
) -> None:
    # GIVEN any valid rules  WHEN fused  THEN the size never exceeds their cap
    decision = fuse(signals, rules, NOW, symbol="AAPL")
    assert 0 <= decision.position_size <= rules.max_position_size
