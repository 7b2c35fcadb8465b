"""Multi-timeframe fusion: the freshest signals of a symbol in, one decision out.

Pure and deterministic: no I/O, no clock (``now`` is an argument), no randomness, so a
stored decision can be replayed from its stored signals and rules. The arithmetic is
written down, with a worked example, in ``docs/fusion.md``; keep the two in step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TypedDict

from kyperian.domain.decisions import Decision, Veto, VetoCode, decision_id
from kyperian.domain.models import Action, Signal, Source, Timeframe
from kyperian.fusion.rules import FusionRules

Slot = tuple[Timeframe, Source]
_EPSILON: Final = 1e-12
_RANK: Final = {timeframe: timeframe.rank for timeframe in Timeframe}
_STRENGTH: Final = {action: action.strength for action in Action}
_HIGHEST_FIRST: Final = tuple(reversed(Timeframe))
Groups = dict[Timeframe, list[Signal]]


class Vote(TypedDict):
    """One timeframe's vote while fusing; validated into a ``TimeframeView`` by the decision.

    A plain dict on the hot path: the decision validates all votes at once, in one call.
    """

    timeframe: Timeframe
    weight: float
    score: float
    confidence: float
    signal_ids: tuple[str, ...]


def _utc(signal: Signal) -> Signal:
    """The signal with offset-aware times: naive times are UTC by convention.

    Done once per signal on entry, so every later comparison is a plain one.
    """
    return signal.model_copy(
        update={
            "timestamp": signal.timestamp.replace(tzinfo=signal.timestamp.tzinfo or UTC),
            "received_at": signal.received_at.replace(tzinfo=signal.received_at.tzinfo or UTC),
        }
    )


def _recency(signal: Signal) -> tuple[datetime, datetime, str]:
    """Order of freshness: alert time, then arrival, then id (ties stay deterministic)."""
    return (signal.timestamp, signal.received_at, signal.signal_id)


def latest_per_slot(signals: Iterable[Signal]) -> dict[Slot, Signal]:
    """The freshest signal for each (timeframe, source): newer alerts replace older ones."""
    best: dict[Slot, Signal] = {}
    for signal in signals:
        if signal.timestamp.tzinfo is None or signal.received_at.tzinfo is None:
            signal = _utc(signal)  # noqa: PLW2901 - the same signal, with aware times
        slot = (signal.timeframe, signal.source)
        current = best.get(slot)
        if current is None or _recency(signal) > _recency(current):
            best[slot] = signal
    return best


def _source_of(signal: Signal) -> str:
    return signal.source


def fresh_groups(signals: Iterable[Signal], rules: FusionRules, now: datetime) -> Groups:
    """The freshest signal per (timeframe, source), stale ones dropped, grouped by timeframe.

    Within a timeframe signals are ordered by source, so the sums (and the decision) do
    not depend on the order the signals were given in.
    """
    max_age = rules.max_age_seconds
    groups: Groups = {}
    for (timeframe, _), signal in latest_per_slot(signals).items():
        if (now - signal.timestamp).total_seconds() <= max_age[timeframe]:
            groups.setdefault(timeframe, []).append(signal)
    for group in groups.values():
        if len(group) > 1:
            group.sort(key=_source_of)
    return groups


def fresh_signals(signals: Iterable[Signal], rules: FusionRules, now: datetime) -> list[Signal]:
    """The signals fusion would use now, highest timeframe first."""
    groups = fresh_groups(signals, rules, now)
    return [s for tf in _HIGHEST_FIRST if tf in groups for s in groups[tf]]


def _vote(timeframe: Timeframe, group: Sequence[Signal], rules: FusionRules) -> Vote:
    """One timeframe's vote: source-weighted means of ``strength x confidence`` and confidence.

    A missing alert confidence counts as ``default_signal_confidence``; both means are
    clamped to their ranges against rounding.
    """
    weights = rules.source_weights
    default = rules.default_signal_confidence
    total = score = confidence = 0.0
    for signal in group:
        weight = weights[signal.source]
        certainty = default if signal.confidence is None else signal.confidence / 100
        total += weight
        score += weight * _STRENGTH[signal.action] * certainty
        confidence += weight * certainty
    return {
        "timeframe": timeframe,
        "weight": rules.weights[timeframe],
        "score": min(1.0, max(-1.0, score / total)),
        "confidence": min(1.0, max(0.0, confidence / total)),
        "signal_ids": tuple(s.signal_id for s in group),
    }


def timeframe_votes(groups: Groups, rules: FusionRules) -> list[Vote]:
    """Each fresh timeframe's vote, highest timeframe first."""
    return [_vote(tf, groups[tf], rules) for tf in _HIGHEST_FIRST if tf in groups]


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


@dataclass(frozen=True, slots=True)
class Tally:
    """The fused numbers before any veto."""

    score: float
    confidence: float


def tally(votes: Sequence[Vote]) -> Tally:
    """Weighted score, and confidence = mean confidence x agreement between timeframes."""
    total = signed = spread = weighted_confidence = 0.0
    for vote in votes:
        weight, score = vote["weight"], vote["score"]
        total += weight
        signed += weight * score
        spread += weight * abs(score)
        weighted_confidence += weight * vote["confidence"]
    if total <= 0:
        return Tally(0.0, 0.0)
    agreement = abs(signed) / spread if spread > 0 else 0.0
    return Tally(
        score=_clamp(signed / total, -1.0, 1.0),
        confidence=_clamp(weighted_confidence / total * agreement, 0.0, 1.0),
    )


def classify(score: float, rules: FusionRules) -> Action:
    """Map a score to an action by the symmetric thresholds."""
    magnitude = abs(score)
    if magnitude >= rules.strong_threshold:
        return Action.STRONG_BUY if score > 0 else Action.STRONG_SELL
    if magnitude >= rules.entry_threshold:
        return Action.BUY if score > 0 else Action.SELL
    return Action.NEUTRAL


def proposed_size(result: Tally, rules: FusionRules) -> float:
    """Equity fraction for an entry: conviction x risk per trade / stop distance, capped."""
    conviction = abs(result.score) * result.confidence
    return _clamp(
        conviction * rules.risk_per_trade / rules.stop_distance, 0.0, rules.max_position_size
    )


def _side(direction: int) -> str:
    return "BUY" if direction > 0 else "SELL"


def entry_timeframe(votes: Sequence[Vote], direction: int) -> Timeframe | None:
    """The lowest timeframe voting in ``direction``: it times a fused entry."""
    agreeing = [v["timeframe"] for v in votes if v["score"] * direction > 0]
    return min(agreeing, key=_RANK.__getitem__) if agreeing else None


def conflict_vetoes(votes: Sequence[Vote], direction: int, entry: Timeframe) -> list[Veto]:
    """Every timeframe above the entry timeframe that votes against the entry vetoes it.

    Disagreement from below (a pullback on 15m under a 4h BUY) does not veto.
    """
    return [
        Veto(
            code=VetoCode.HIGHER_TIMEFRAME_CONFLICT,
            reason=(
                f"{v['timeframe']} votes {_side(-direction)} (score {v['score']:+.3f}) against "
                f"a {_side(direction)} entry timed on {entry}"
            ),
            timeframe=v["timeframe"],
        )
        for v in votes
        if v["score"] * direction < 0 and _RANK[v["timeframe"]] > _RANK[entry]
    ]


def trigger_vetoes(votes: Sequence[Vote], trigger: Signal | None, ids: Sequence[str]) -> list[Veto]:
    """When fusion proposes no entry but the triggering alert does, say what blocked it.

    A 4h BUY arriving under a weekly SELL gives a NEUTRAL (or SELL-side) score: the 4h
    alert's entry is vetoed by the higher timeframe, and the decision records it. Only a
    fresh, directional trigger counts.
    """
    if trigger is None or trigger.action.direction == 0 or trigger.signal_id not in ids:
        return []
    return conflict_vetoes(votes, trigger.action.direction, trigger.timeframe)


def confidence_vetoes(result: Tally, rules: FusionRules) -> list[Veto]:
    """An entry needs a fused confidence of at least the configured floor."""
    if result.confidence + _EPSILON >= rules.min_confidence:
        return []
    reason = f"confidence {result.confidence:.3f} is below the floor {rules.min_confidence:.3f}"
    return [Veto(code=VetoCode.LOW_CONFIDENCE, reason=reason)]


def risk_vetoes(size: float, exposure: float, direction: int, rules: FusionRules) -> list[Veto]:
    """Risk limits on the symbol's open exposure; an entry that reduces exposure is never vetoed."""
    held = exposure * direction
    vetoes: list[Veto] = []
    if held + _EPSILON >= rules.max_position_size:
        vetoes.append(
            Veto(
                code=VetoCode.MAX_POSITION_SIZE,
                reason=(
                    f"the {_side(direction)} position is already {held:.4f} of equity, "
                    f"the maximum position size is {rules.max_position_size:.4f}"
                ),
            )
        )
    if held + size > rules.max_symbol_exposure + _EPSILON:
        vetoes.append(
            Veto(
                code=VetoCode.MAX_EXPOSURE,
                reason=(
                    f"exposure {held:.4f} + {size:.4f} would exceed the per-symbol limit "
                    f"{rules.max_symbol_exposure:.4f}"
                ),
            )
        )
    return vetoes


def _no_anchor(rules: FusionRules) -> Veto:
    anchors = ", ".join(rules.anchor_timeframes)
    return Veto(
        code=VetoCode.NO_ANCHOR, reason=f"no fresh signal on an anchor timeframe ({anchors})"
    )


def _price(groups: Groups) -> float | None:
    """The price of the most recent signal used that carries a finite one."""
    best: Signal | None = None
    for group in groups.values():
        for signal in group:
            price = signal.price
            if price is None or not math.isfinite(price):
                continue
            if best is None or _recency(signal) > _recency(best):
                best = signal
    return best.price if best else None


def fuse(
    signals: Iterable[Signal],
    rules: FusionRules,
    now: datetime,
    *,
    symbol: str,
    exposure: float = 0.0,
    trigger: Signal | None = None,
) -> Decision:
    """Fuse a symbol's signals into one decision.

    Parameters
    ----------
    signals
        Any signals of ``symbol``; the freshest per (timeframe, source) is used and stale
        ones (older than ``rules.max_age_seconds``) are ignored.
    rules
        Weights, thresholds and limits.
    now
        The decision time, timezone-aware.
    symbol
        The symbol decided on.
    exposure
        The symbol's signed open exposure as a fraction of equity (long > 0, short < 0).
    trigger
        The signal whose arrival caused this decision; its id and arrival time make the
        decision's id and sort time the same for every redelivery.

    Returns
    -------
    Decision
        With size zero for NEUTRAL, WAIT and any veto.

    Raises
    ------
    ValueError
        ``now`` is naive, ``exposure`` is not finite, or a signal is for another symbol.
    """
    given = list(signals)
    _check_arguments([*given, *([trigger] if trigger else [])], now, symbol, exposure)
    groups = fresh_groups(given, rules, now)
    votes = timeframe_votes(groups, rules)
    result = tally(votes)
    anchored = any(tf in groups for tf in rules.anchor_timeframes)
    action = classify(result.score, rules) if anchored else Action.WAIT
    ids = tuple(i for v in votes for i in v["signal_ids"])
    vetoes, size = _vetoes_and_size(action, result, votes, exposure, rules)
    if not anchored:
        vetoes = [_no_anchor(rules)]
    elif action.direction == 0:
        vetoes = trigger_vetoes(votes, trigger, ids)
    trigger_id = trigger.signal_id if trigger else None
    return Decision.model_validate(
        {
            "decision_id": decision_id(symbol, trigger_id, now, ids),
            "symbol": symbol,
            "action": action,
            "score": result.score,
            "confidence": result.confidence,
            "position_size": size,
            "vetoes": vetoes,
            "signal_ids": ids,
            "timeframes": votes,
            "trigger_signal_id": trigger_id,
            "triggered_at": trigger.received_at if trigger else None,
            "price": _price(groups),
            **_exits(trigger, action),
            "exposure": exposure,
            "decided_at": now,
        }
    )


def _exits(trigger: Signal | None, action: Action) -> dict[str, float | None]:
    """The trigger's take-profit and stop-loss, kept only when it points the decision's way."""
    if trigger is None or action.direction == 0 or trigger.action.direction != action.direction:
        return {}
    return {"take_profit": trigger.take_profit, "stop_loss": trigger.stop_loss}


def _check_arguments(
    signals: Sequence[Signal], now: datetime, symbol: str, exposure: float
) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not math.isfinite(exposure):
        raise ValueError(f"exposure must be finite, got {exposure}")
    strangers = {s.symbol for s in signals if s.symbol != symbol}
    if strangers:
        raise ValueError(f"signals for {sorted(strangers)} passed when fusing {symbol}")


def _vetoes_and_size(
    action: Action,
    result: Tally,
    votes: Sequence[Vote],
    exposure: float,
    rules: FusionRules,
) -> tuple[list[Veto], float]:
    """Every veto that applies to an entry (all are recorded), and the size if none does."""
    direction = action.direction
    if direction == 0:
        return [], 0.0
    size = proposed_size(result, rules)
    entry = entry_timeframe(votes, direction)
    vetoes = [
        *(conflict_vetoes(votes, direction, entry) if entry else []),
        *confidence_vetoes(result, rules),
        *risk_vetoes(size, exposure, direction, rules),
    ]
    return vetoes, (0.0 if vetoes else size)
