"""Fusion rules: defaults, validation, and loading from KYPERIAN_FUSION_* variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kyperian.domain.decisions import SIGNAL_LIFETIME_SECONDS
from kyperian.domain.models import Timeframe
from kyperian.fusion import FusionRules
from kyperian.settings import Settings


def test_defaults_are_the_documented_ones() -> None:
    # GIVEN no configuration  WHEN rules are built  THEN the documented defaults apply
    rules = FusionRules()
    assert [rules.weights[tf] for tf in Timeframe] == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    assert dict(rules.max_age_seconds) == dict(SIGNAL_LIFETIME_SECONDS)
    assert rules.max_age_seconds[Timeframe.W1] == 7 * 86400
    assert rules.max_age_seconds[Timeframe.D1] == 86400
    assert rules.max_age_seconds[Timeframe.H4] == 8 * 3600
    assert (rules.entry_threshold, rules.strong_threshold, rules.min_confidence) == (0.25, 0.6, 0.5)
    assert (rules.max_position_size, rules.max_symbol_exposure) == (0.10, 0.15)


def test_a_partial_map_is_merged_over_the_defaults() -> None:
    # GIVEN only the weekly weight  WHEN built  THEN the other weights keep their defaults
    rules = FusionRules.model_validate({"weights": {"1W": 8}})
    assert rules.weights[Timeframe.W1] == 8
    assert rules.weights[Timeframe.M15] == 1.0


@pytest.mark.parametrize(
    "values",
    [
        {"weights": {"1D": 0}},
        {"max_age_seconds": {"4h": -1}},
        {"entry_threshold": 0.7, "strong_threshold": 0.6},
        {"max_position_size": 0.2, "max_symbol_exposure": 0.1},
        {"unknown_rule": 1},
    ],
)
def test_inconsistent_rules_are_rejected(values: dict[str, object]) -> None:
    # GIVEN a rule set that cannot be right  WHEN built  THEN validation fails at start-up
    with pytest.raises(ValidationError):
        FusionRules.model_validate(values)


def test_rules_are_read_from_prefixed_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN fusion variables in the environment
    monkeypatch.setenv("KYPERIAN_FUSION_MIN_CONFIDENCE", "0.35")
    monkeypatch.setenv("KYPERIAN_FUSION_WEIGHTS", '{"1W": 7}')
    monkeypatch.setenv("KYPERIAN_FUSION_ANCHOR_TIMEFRAMES", '["1D", "1W"]')

    # WHEN settings are read
    rules = Settings().fusion

    # THEN the engine's rules carry them, merged over the defaults
    assert type(rules) is FusionRules
    assert rules.min_confidence == 0.35
    assert rules.weights[Timeframe.W1] == 7
    assert rules.weights[Timeframe.D1] == 4
    assert rules.anchor_timeframes == (Timeframe.D1, Timeframe.W1)
