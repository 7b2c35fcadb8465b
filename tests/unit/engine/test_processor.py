"""The processing rules for one message: decide, dedupe, degrade, recover, trade."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest

from kyperian.domain.engine_ports import QueueMessage
from kyperian.domain.models import Action, Signal
from kyperian.engine.processor import Outcome, PoisonMessage, parse_envelope
from tests.signal_factory import NOW, envelope, make_signal
from tests.unit.engine.conftest import Engine, emitted_metrics, log_records, metric_names


def _message(signal: Signal, count: int = 1, message_id: str = "m-1") -> QueueMessage:
    return QueueMessage(message_id, f"receipt-{message_id}", envelope(signal), count)


def _bullish_context(engine: Engine) -> None:
    """A fresh 1D BUY already cached, as if decided earlier."""
    engine.cache.record_all(
        [make_signal(timeframe="1D", source="technicals", action="BUY", confidence=90)]
    )


def test_a_new_signal_is_decided_stored_cached_and_counted(
    engine: Engine, capsys: pytest.CaptureFixture[str], log_buffer: io.StringIO
) -> None:
    # GIVEN a cached 1D BUY and a new 4h STRONG_BUY that arrived 40 ms before the clock
    _bullish_context(engine)
    signal = make_signal(timeframe="4h", action="STRONG_BUY", confidence=90, received_at=NOW)
    engine.clock.now = NOW + timedelta(milliseconds=40)

    # WHEN its message is processed
    result = engine.processor.handle(_message(signal))

    # THEN a BUY-side decision is stored, cached, triggered by that signal, and the message may go
    assert result.outcome is Outcome.DECIDED
    assert result.outcome.delete
    [stored] = engine.decisions.items
    assert stored.trigger_signal_id == signal.signal_id
    assert stored.action is Action.STRONG_BUY
    assert engine.cache.decisions["AAPL"] == stored
    # AND the metrics of the decision were emitted with the engine's dimensions
    output = capsys.readouterr().out
    names = metric_names(output)
    assert {"SignalsProcessed", "DecisionsMade", "PositionSize", "WebhookToDecisionLatency"} <= set(
        names
    )
    decided = next(d for d in emitted_metrics(output) if "DecisionsMade" in d)
    assert decided["action"] == "STRONG_BUY"
    assert (decided["service"], decided["environment"]) == ("engine", "test")
    assert decided["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Kyperian"
    latency = next(d for d in emitted_metrics(output) if "WebhookToDecisionLatency" in d)
    assert latency["WebhookToDecisionLatency"] == [pytest.approx(40.0)]
    # AND the log lines carry the signal id as correlation id
    logs = log_records(log_buffer)
    assert [line["message"] for line in logs] == ["decision made"]
    assert logs[0]["correlation_id"] == signal.signal_id
    assert logs[0]["action"] == "STRONG_BUY"


def test_a_redelivered_message_changes_nothing(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a signal already processed
    signal = make_signal(timeframe="4h")
    engine.processor.handle(_message(signal))
    before = (
        list(engine.decisions.items),
        dict(engine.cache.signals),
        dict(engine.cache.decisions),
    )
    capsys.readouterr()

    # WHEN SQS delivers the same message again
    result = engine.processor.handle(_message(signal, count=2))

    # THEN it is acknowledged as a duplicate and nothing changed
    assert result.outcome is Outcome.DUPLICATE
    assert result.outcome.delete
    assert (engine.decisions.items, engine.cache.signals, engine.cache.decisions) == before
    assert "DuplicateSignals" in metric_names(capsys.readouterr().out)


def test_a_redelivery_after_the_cache_forgot_is_stopped_by_the_table(engine: Engine) -> None:
    # GIVEN a processed signal whose Redis marker was lost (flush, failover)
    signal = make_signal(timeframe="4h")
    engine.processor.handle(_message(signal))
    engine.cache.done.clear()

    # WHEN it is redelivered
    result = engine.processor.handle(_message(signal, count=2))

    # THEN the table's one-decision-per-signal rule makes it a duplicate, still one decision
    assert result.outcome is Outcome.DUPLICATE
    assert len(engine.decisions.items) == 1
    assert result.decision == engine.decisions.items[0]


def test_a_signal_leased_by_another_worker_is_left_alone(engine: Engine) -> None:
    # GIVEN another task holds the processing lease of a signal
    signal = make_signal()
    engine.cache.leases.add(signal.signal_id)

    # WHEN this task receives it
    result = engine.processor.handle(_message(signal))

    # THEN it neither decides nor deletes the message
    assert result.outcome is Outcome.BUSY
    assert not result.outcome.delete
    assert engine.decisions.items == []


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"detail-type": "SomethingElse", "detail": {}}),
        json.dumps({"detail-type": "SignalValidated", "detail": {"symbol": "AAPL"}}),
    ],
)
def test_unreadable_messages_are_poison_and_stay_for_the_dead_letter_queue(
    engine: Engine, body: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a message the engine can never process  WHEN handled
    result = engine.processor.handle(QueueMessage("m-bad", "r", body, 3))

    # THEN it is not deleted (SQS redrives it after maxReceiveCount) and it is counted
    assert result.outcome is Outcome.POISON
    assert not result.outcome.delete
    assert "PoisonMessages" in metric_names(capsys.readouterr().out)
    assert engine.decisions.items == []


def test_a_store_failure_leaves_the_message_for_a_retry_and_frees_the_lease(engine: Engine) -> None:
    # GIVEN the Decisions table is failing
    engine.decisions.down = True
    signal = make_signal()

    # WHEN the signal is processed
    result = engine.processor.handle(_message(signal))

    # THEN the message stays and the next delivery can be processed (no stale lease)
    assert result.outcome is Outcome.RETRY
    assert not result.outcome.delete
    engine.decisions.down = False
    assert engine.processor.handle(_message(signal, count=2)).outcome is Outcome.DECIDED


def test_redis_down_means_deciding_from_the_table(
    engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN Redis is down and the Signals table holds a fresh 1D STRONG_BUY
    engine.cache.down = True
    engine.history.signals.append(
        make_signal(timeframe="1D", source="technicals", action="STRONG_BUY", confidence=90)
    )
    signal = make_signal(timeframe="4h", action="STRONG_BUY", confidence=90)

    # WHEN a 4h STRONG_BUY is processed
    result = engine.processor.handle(_message(signal))

    # THEN the decision uses both timeframes, is stored, and the degraded mode is counted
    assert result.outcome is Outcome.DECIDED
    assert result.degraded
    assert set(engine.decisions.items[0].signal_ids) == {
        engine.history.signals[0].signal_id,
        signal.signal_id,
    }
    assert engine.circuit.degraded
    assert "DegradedMode" in metric_names(capsys.readouterr().out)


def test_while_degraded_redis_is_tried_only_after_the_retry_interval(engine: Engine) -> None:
    # GIVEN Redis failed once
    engine.cache.down = True
    engine.processor.handle(_message(make_signal(), message_id="m-1"))
    calls = engine.cache.calls

    # WHEN more signals arrive within the retry interval
    for index in range(3):
        engine.processor.handle(_message(make_signal(), message_id=f"m-{index + 2}"))

    # THEN no time is spent on Redis, and every signal was still decided
    assert engine.cache.calls == calls
    assert len(engine.decisions.items) == 4


def test_the_engine_recovers_by_itself_and_refills_the_cache(engine: Engine) -> None:
    # GIVEN a signal decided from the table while Redis was down
    engine.cache.down = True
    missed = make_signal(timeframe="1D", source="technicals", action="BUY")
    engine.history.signals.append(missed)
    engine.processor.handle(_message(missed, message_id="m-1"))

    # WHEN Redis comes back and, after the retry interval, a new signal arrives
    engine.cache.down = False
    engine.clock.advance(6)
    signal = make_signal(timeframe="4h", action="BUY")
    result = engine.processor.handle(_message(signal, message_id="m-2"))

    # THEN the engine is out of degraded mode and the cache holds what it missed
    assert result.outcome is Outcome.DECIDED
    assert not result.degraded
    assert not engine.circuit.degraded
    assert missed in engine.cache.signals.values()
    assert set(result.decision.signal_ids) == {missed.signal_id, signal.signal_id}  # type: ignore[union-attr]


def test_parse_envelope_reads_the_detail_as_a_signal() -> None:
    # GIVEN the body EventBridge delivers  WHEN parsed  THEN it is the original signal
    signal = make_signal()
    assert parse_envelope(envelope(signal)) == signal
    with pytest.raises(PoisonMessage, match="not a SignalValidated event"):
        parse_envelope(json.dumps({"detail-type": "Other"}))
