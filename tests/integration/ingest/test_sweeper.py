"""The sweeper Lambda against moto: rows left pending are published, marked, and left alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kyperian.adapters.aws.dynamodb import PENDING, PUBLISH_STATE, DynamoSignalStore
from kyperian.ingest import sweeper
from kyperian.ingest.parse import ArrivalWindow, parse_mtf_alert
from tests.conftest import FakeLambdaContext, IngestStack


def _pending(stack: IngestStack, minutes_ago: float, symbol: str) -> list[str]:
    """Store an MTF alert's rows as a request that died before publishing would leave them."""
    window = ArrivalWindow.at(datetime.now(UTC) - timedelta(minutes=minutes_ago), 7, 300)
    payload: dict[str, Any] = {
        "symbol": symbol,
        "source": "ai",
        "signals": [{"timeframe": tf, "action": "buy"} for tf in ("1W", "1D")],
    }
    signals = parse_mtf_alert(payload, window)
    DynamoSignalStore(stack.resources.table, stack.clients["dynamodb"]).add_all(signals)
    return [s.signal_id for s in signals]


def _states(stack: IngestStack) -> dict[str, str | None]:
    items = stack.clients["dynamodb"].scan(TableName=stack.resources.table)["Items"]
    return {i["signal_id"]["S"]: i.get(PUBLISH_STATE, {}).get("S") for i in items}


def _queued(stack: IngestStack) -> list[str]:
    got = stack.clients["sqs"].receive_message(
        QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"])["detail"]["signal_id"] for m in got.get("Messages", [])]


def test_the_sweeper_publishes_old_pending_rows_and_spares_live_ones(
    ingest_stack: IngestStack,
) -> None:
    # GIVEN rows pending for 10 minutes (a failed undo) and rows 10 seconds old (a live request)
    stale = _pending(ingest_stack, 10, "SWEPT")
    live = _pending(ingest_stack, 10 / 60, "LIVE")
    assert set(_states(ingest_stack).values()) == {PENDING}
    # WHEN the scheduled Lambda runs
    answer = sweeper.lambda_handler({}, FakeLambdaContext())
    # THEN the stale rows' events reach the queue and the rows are marked; the live ones wait
    assert answer == {"found": 2, "published": 2}
    assert sorted(_queued(ingest_stack)) == sorted(stale)
    states = _states(ingest_stack)
    assert {states[i] for i in stale} == {None}
    assert {states[i] for i in live} == {PENDING}
    # AND a second run finds nothing left to do
    assert sweeper.lambda_handler({}, FakeLambdaContext()) == {"found": 0, "published": 0}


def test_disabled_metrics_are_neither_printed_nor_kept_between_runs(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED=true and a row to sweep
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    _pending(ingest_stack, 10, "QUIET")
    capsys.readouterr()
    # WHEN the sweeper runs twice
    sweeper.lambda_handler({}, FakeLambdaContext())
    sweeper.lambda_handler({}, FakeLambdaContext())
    # THEN no EMF document is printed and nothing is left held for a later run
    assert "_aws" not in capsys.readouterr().out
    assert sweeper.metrics.metric_set == {}
    # AND once enabled again, a run prints its own count only, not the silenced runs'
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    sweeper.lambda_handler({}, FakeLambdaContext())
    documents = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line
    ]
    assert [d["SignalsSwept"] for d in documents] == [[0.0]]  # not [2.0, 0.0, 0.0]
