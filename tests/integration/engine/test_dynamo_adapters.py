"""The Decisions and Signals table adapters against moto, with the stacks' key schema."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.signal_history import DynamoSignalHistory
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import DuplicateDecision
from kyperian.domain.errors import OperationalError
from kyperian.domain.models import Signal
from kyperian.fusion import FusionRules, fuse
from tests.integration.engine.conftest import EngineAws
from tests.signal_factory import NOW, make_signal

pytestmark = pytest.mark.integration


def _trigger(seconds: int, signal_id: str, symbol: str = "AAPL") -> Signal:
    """A 4h STRONG_BUY that reached the webhook ``seconds`` after NOW."""
    at = NOW + timedelta(seconds=seconds)
    return make_signal(
        symbol=symbol,
        timeframe="4h",
        action="STRONG_BUY",
        confidence=100,
        at=at,
        signal_id=signal_id,
    )


def _decision(trigger: Signal, delay: float = 0.05) -> Decision:
    """The decision a worker makes ``delay`` seconds after the trigger, against a 1D SELL."""
    weekly_view = make_signal(
        symbol=trigger.symbol, timeframe="1D", source="technicals", action="SELL", confidence=30
    )
    decided_at = trigger.received_at + timedelta(seconds=delay)
    return fuse(
        [weekly_view, trigger], FusionRules(), decided_at, symbol=trigger.symbol, trigger=trigger
    )


def test_a_decision_is_stored_with_the_specified_keys_and_read_back_whole(
    engine_aws: EngineAws,
) -> None:
    # GIVEN a decision with vetoes and per-timeframe votes
    store = DynamoDecisionStore(engine_aws.decisions_table, engine_aws.dynamodb)
    trigger = _trigger(0, "sig-1")
    decision = _decision(trigger)
    assert decision.vetoes

    # WHEN stored
    store.record(decision)

    # THEN it is keyed DECISION#SYMBOL / SIGNAL#<signal id>, ordered by the signal's time,
    # expires in 30 days, and reads back whole
    [item] = engine_aws.dynamodb.scan(TableName=engine_aws.decisions_table)["Items"]
    assert item["PK"]["S"] == "DECISION#AAPL"
    assert item["SK"]["S"] == "SIGNAL#sig-1"
    assert item["time_key"]["S"] == f"2025-01-06T15:00:00.000Z#{decision.decision_id}"
    expires = decision.decided_at + timedelta(days=30)
    assert int(item["ttl"]["N"]) == int(expires.timestamp())
    assert store.latest("AAPL") == decision
    assert store.for_trigger(trigger) == decision


def test_one_decision_per_triggering_signal(engine_aws: EngineAws) -> None:
    # GIVEN a stored decision for sig-1
    store = DynamoDecisionStore(engine_aws.decisions_table, engine_aws.dynamodb)
    trigger = _trigger(0, "sig-1")
    store.record(_decision(trigger))

    # WHEN the same signal is decided again 30 s later (a redelivery after the cache forgot)
    with pytest.raises(DuplicateDecision):
        store.record(_decision(trigger, delay=30))

    # THEN only the first decision exists
    assert len(store.history("AAPL")) == 1
    assert store.for_trigger(_trigger(0, "sig-2")) is None


def test_a_redelivery_with_a_new_arrival_time_is_still_the_same_decision(
    engine_aws: EngineAws,
) -> None:
    # GIVEN a stored decision for sig-1
    store = DynamoDecisionStore(engine_aws.decisions_table, engine_aws.dynamodb)
    store.record(_decision(_trigger(0, "sig-1")))

    # WHEN the webhook republishes the same alert, which reaches it again 90 s later
    redelivered = _trigger(90, "sig-1")

    # THEN the table refuses a second decision and finds the first one by the signal id
    with pytest.raises(DuplicateDecision):
        store.record(_decision(redelivered))
    found = store.for_trigger(redelivered)
    assert found is not None
    assert found.triggered_at == _trigger(0, "sig-1").received_at
    assert len(store.history("AAPL")) == 1


def test_history_is_newest_first_and_pages_with_before(engine_aws: EngineAws) -> None:
    # GIVEN five decisions on signals a minute apart, and one on another symbol
    store = DynamoDecisionStore(engine_aws.decisions_table, engine_aws.dynamodb)
    for index in range(5):
        store.record(_decision(_trigger(60 * index, f"sig-{index}")))
    store.record(_decision(_trigger(0, "other", symbol="MSFT")))

    # WHEN read in pages of two
    first = store.history("AAPL", limit=2)
    second = store.history("AAPL", limit=2, before=first[-1].sort_time)

    # THEN they follow each other newest first, and the other symbol never appears
    assert [d.trigger_signal_id for d in first + second] == ["sig-4", "sig-3", "sig-2", "sig-1"]
    assert store.latest("MSFT") is not None
    assert store.latest("NONE") is None


def test_a_missing_table_is_an_operational_error(engine_aws: EngineAws) -> None:
    # GIVEN a store on a table that does not exist  WHEN used  THEN a human must act
    store = DynamoDecisionStore("no-such-table", engine_aws.dynamodb)
    with pytest.raises(OperationalError):
        store.latest("AAPL")
    with pytest.raises(OperationalError):
        store.check()


def test_signal_history_reads_what_can_still_be_fresh(engine_aws: EngineAws) -> None:
    # GIVEN signals stored by the validator's own store: fresh and stale, two symbols
    signals = DynamoSignalStore(engine_aws.signals_table, engine_aws.dynamodb)
    fresh_4h = make_signal(timeframe="4h", age=timedelta(hours=3))
    fresh_1w = make_signal(timeframe="1W", source="ai", age=timedelta(days=6))
    stale_15m = make_signal(timeframe="15m", age=timedelta(hours=3))
    other = make_signal(symbol="MSFT", timeframe="4h")
    for signal in (fresh_4h, fresh_1w, stale_15m, other):
        signals.add(signal)

    # WHEN the engine reads AAPL's recent signals
    recent = DynamoSignalHistory(engine_aws.signals_table, engine_aws.dynamodb).recent("AAPL", NOW)

    # THEN it gets the fresh ones, rebuilt exactly, and not the stale one or MSFT's
    assert sorted(s.signal_id for s in recent) == sorted([fresh_4h.signal_id, fresh_1w.signal_id])
    assert next(s for s in recent if s.signal_id == fresh_4h.signal_id) == fresh_4h
