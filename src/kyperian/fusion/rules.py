"""The tunable part of fusion: weights, thresholds and risk limits, with documented defaults.

``FusionRules`` is frozen and validated, so a decision is a pure function of its signals,
its rules and the clock. The engine reads the rules from ``KYPERIAN_FUSION_*`` environment
variables (see ``kyperian.settings``); ``docs/fusion.md`` explains each one with a worked
example. Partial maps (``weights``, ``max_age_seconds``, ``source_weights``) are merged
over the defaults, so overriding one timeframe never silently drops the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kyperian.domain.decisions import SIGNAL_LIFETIME_SECONDS
from kyperian.domain.models import Source, Timeframe

DEFAULT_WEIGHTS: Final = MappingProxyType(
    {
        Timeframe.M15: 1.0,
        Timeframe.M30: 1.5,
        Timeframe.H1: 2.0,
        Timeframe.H4: 3.0,
        Timeframe.D1: 4.0,
        Timeframe.W1: 5.0,
    }
)
"""Higher timeframes weigh more: a weekly opinion counts five times a 15-minute one."""


def _merge(defaults: Mapping[Any, Any], value: object) -> object:
    """Lay a partial mapping over the defaults; anything else is left for pydantic to reject."""
    if isinstance(value, Mapping):
        return {**defaults, **value}
    return value


class FusionRules(BaseModel):
    """Every number fusion uses. Sizes and exposures are fractions of account equity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: Mapping[Timeframe, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    """Weight of each timeframe's vote (default 1, 1.5, 2, 3, 4, 5 from 15m to 1W)."""
    max_age_seconds: Mapping[Timeframe, int] = Field(
        default_factory=lambda: dict(SIGNAL_LIFETIME_SECONDS)
    )
    """Older signals are stale and ignored (default: the cache TTLs, 7 d for 1W, 30 min for 15m)."""
    source_weights: Mapping[Source, float] = Field(
        default_factory=lambda: dict.fromkeys(Source, 1.0)
    )
    """Weight of each indicator family inside a timeframe (default 1 for all)."""
    anchor_timeframes: tuple[Timeframe, ...] = (Timeframe.H4, Timeframe.D1)
    """Without a fresh signal on at least one of these the decision is WAIT (default 4h, 1D)."""
    entry_threshold: float = Field(default=0.25, gt=0, le=1)
    """``|score|`` from which the decision is BUY/SELL rather than NEUTRAL (default 0.25)."""
    strong_threshold: float = Field(default=0.6, gt=0, le=1)
    """``|score|`` from which the decision is STRONG_BUY/STRONG_SELL (default 0.6)."""
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    """Entries with a lower fused confidence are vetoed (default 0.5)."""
    default_signal_confidence: float = Field(default=0.5, ge=0, le=1)
    """Confidence assumed for an alert that carries none (default 0.5, on the 0-1 scale)."""
    risk_per_trade: float = Field(default=0.01, gt=0, le=1)
    """Equity put at risk by a full-conviction entry (default 1 %)."""
    stop_distance: float = Field(default=0.05, gt=0, le=1)
    """Assumed stop distance as a fraction of price; turns risk into size (default 5 %)."""
    max_position_size: float = Field(default=0.10, gt=0, le=1)
    """Cap on one entry's size, and no new entry once the position has reached it (default 10 %)."""
    max_symbol_exposure: float = Field(default=0.15, gt=0, le=1)
    """No entry may take the symbol's open exposure above this (default 15 %)."""

    @field_validator("weights", mode="before")
    @classmethod
    def _merge_weights(cls, value: object) -> object:
        return _merge(DEFAULT_WEIGHTS, value)

    @field_validator("max_age_seconds", mode="before")
    @classmethod
    def _merge_ages(cls, value: object) -> object:
        return _merge(SIGNAL_LIFETIME_SECONDS, value)

    @field_validator("source_weights", mode="before")
    @classmethod
    def _merge_sources(cls, value: object) -> object:
        return _merge(dict.fromkeys(Source, 1.0), value)

    @field_validator("weights", "source_weights")
    @classmethod
    def _positive_weights(cls, value: Mapping[Any, float]) -> Mapping[Any, float]:
        if any(not 0 < weight < float("inf") for weight in value.values()):
            raise ValueError("every weight must be a positive finite number")
        return dict(value)

    @field_validator("max_age_seconds")
    @classmethod
    def _positive_ages(cls, value: Mapping[Timeframe, int]) -> Mapping[Timeframe, int]:
        if any(age <= 0 for age in value.values()):
            raise ValueError("every max age must be a positive number of seconds")
        return dict(value)

    @model_validator(mode="after")
    def _consistent(self) -> FusionRules:
        if self.strong_threshold < self.entry_threshold:
            raise ValueError("strong_threshold must not be below entry_threshold")
        if self.max_symbol_exposure < self.max_position_size:
            raise ValueError("max_symbol_exposure must not be below max_position_size")
        return self
