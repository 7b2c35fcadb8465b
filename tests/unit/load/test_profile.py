"""The load profile: phases parsed strictly, arrivals at each phase's rate and inside it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.load.profile import (
    DEFAULT_PHASES,
    PHASE2_RATE,
    PHASE3_RATE,
    SPIKE,
    WARMUP,
    Phase,
    Schedule,
    parse_phases,
    phase_at,
    profile,
    users_needed,
)


def test_the_default_profile_holds_the_specifications_phases() -> None:
    # GIVEN no PHASES and no SPIKE
    phases = profile(None, spike=False)

    # THEN a warm-up sends one alert per symbol (200), then Phase 2 (500/min) and Phase 3
    # (2,000/min) run 60 s each, and no step passes the stage throttle's 50/s
    assert phases[0].name == WARMUP
    assert phases[0].rate * phases[0].seconds == 200
    by_name = {p.name: p for p in phases}
    assert (by_name["phase2"].rate, by_name["phase2"].seconds) == (PHASE2_RATE, 60)
    assert (by_name["phase3"].rate, by_name["phase3"].seconds) == (PHASE3_RATE, 60)
    assert round(PHASE2_RATE * 60) == 500
    assert round(PHASE3_RATE * 60) == 2000
    assert max(p.rate for p in phases) <= 50
    assert profile(None, spike=True) == (*DEFAULT_PHASES, SPIKE)
    assert SPIKE.rate == pytest.approx(10 * PHASE3_RATE)


def test_phases_are_parsed_and_bad_ones_named() -> None:
    # WHEN a profile is given as text
    phases = parse_phases("warm:2:5, peak:40.5:30")

    # THEN it is read in order; a malformed part is refused naming it
    assert phases == (Phase("warm", 2, 5), Phase("peak", 40.5, 30))
    for bad in ("warm:2", "warm:0:5", "warm:x:5", "warm:2:-1", ":2:5"):
        with pytest.raises(ValueError, match="phase"):
            parse_phases(bad)


def test_phase_at_follows_the_phase_boundaries() -> None:
    phases = (Phase("a", 1, 10), Phase("b", 2, 5))
    assert phase_at(phases, 0) == phases[0]
    assert phase_at(phases, 9.99) == phases[0]
    assert phase_at(phases, 10) == phases[1]
    assert phase_at(phases, 15) is None


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.5, 60), st.floats(5, 60)), min_size=1, max_size=4),
    st.integers(0, 2**31),
)
def test_arrivals_fall_inside_their_phase_at_its_rate(
    shape: list[tuple[float, float]], seed: int
) -> None:
    # GIVEN a profile of phases and a seeded schedule
    phases = tuple(Phase(f"p{i}", rate, seconds) for i, (rate, seconds) in enumerate(shape))
    schedule = Schedule(phases, seed=seed)

    # WHEN every due time is drawn
    drawn = []
    while (slot := schedule.next_due()) is not None:
        drawn.append(slot)

    # THEN due times only grow, each lies in its own phase, and each phase's count is its
    # rate times its length within six standard deviations (Poisson: variance = mean)
    dues = [due for due, _ in drawn]
    assert dues == sorted(dues)
    for due, phase in drawn:
        assert phase_at(phases, due) == phase
    for phase in phases:
        expected = phase.rate * phase.seconds
        count = sum(1 for _, p in drawn if p == phase)
        assert abs(count - expected) <= 6 * math.sqrt(expected) + 1


def test_enough_clients_for_the_peak_even_when_answers_are_slow() -> None:
    # A client is busy while its request is in flight: at 50/s and 2 s answers, 100 are needed
    assert users_needed((Phase("a", 50, 1),)) == 100
    assert users_needed((Phase("a", 1, 1),)) == 10
