"""Ingestion against moto: the row, the event on the queue, duplicates, and failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kyperian.adapters.aws.dynamodb import DynamoSignalStore, item_to_signal
from kyperian.domain.errors import TemporaryError
from kyperian.ingest import handler
from kyperian.ingest.parse import ArrivalWindow, parse_mtf_alert
from tests.aws_resources import API_KEY
from tests.conftest import FakeLambdaContext, IngestStack, rewire
from tests.events.load import http_event

CTX = FakeLambdaContext()


def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(http_event(path=path, body=body), CTX)
    return response["statusCode"], json.loads(response["body"])


def alert(**fields: Any) -> dict[str, Any]:
    base = {
        "passphrase": API_KEY,
        "symbol": "NASDAQ:AAPL",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        "price": 189.42,
        "confidence": 85,
        "indicators": {"rsi": 61.2},
    }
    return {**base, **fields}


def rows(stack: IngestStack) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = stack.clients["dynamodb"].scan(TableName=stack.resources.table)[
        "Items"
    ]
    return items


def queued(stack: IngestStack) -> list[dict[str, Any]]:
    """Every event the rule delivered to the queue (drained)."""
    events: list[dict[str, Any]] = []
    while True:
        got = stack.clients["sqs"].receive_message(
            QueueUrl=stack.resources.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        if not got.get("Messages"):
            return events
        for message in got["Messages"]:
            events.append(json.loads(message["Body"]))
            stack.clients["sqs"].delete_message(
                QueueUrl=stack.resources.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def test_signal_is_stored_with_the_specified_keys_and_ttl(ingest_stack: IngestStack) -> None:
    # GIVEN an alert with its own bar time
    before = datetime.now(UTC)
    status, answer = post("/webhook", alert(timestamp="2026-11-24T16:00:00Z"))
    # WHEN the table is read
    (item,) = rows(ingest_stack)
    # THEN PK/SK follow the specification, the GSI attributes and the 7-day TTL are set
    assert status == 202
    assert item["PK"] == {"S": "SIGNAL#AAPL"}
    assert item["SK"]["S"] == f"4h#2026-11-24T16:00:00.000Z#{answer['signal_id']}"
    assert item["symbol"] == {"S": "AAPL"}
    assert item["timestamp"] == {"S": "2026-11-24T16:00:00.000Z"}
    ttl = int(item["ttl"]["N"])
    assert before + timedelta(days=7) - timedelta(seconds=2) <= datetime.fromtimestamp(ttl, UTC)
    assert datetime.fromtimestamp(ttl, UTC) <= datetime.now(UTC) + timedelta(days=7)
    assert "passphrase" not in item
    assert API_KEY not in json.dumps(item)
    signal = item_to_signal(item)
    assert (signal.exchange, signal.price, signal.indicators) == ("NASDAQ", 189.42, {"rsi": 61.2})


def test_gsi_finds_a_symbols_signals_by_time(ingest_stack: IngestStack) -> None:
    post("/webhook", alert(timeframe="1W"))
    post("/webhook", alert(timeframe="D"))
    found = ingest_stack.clients["dynamodb"].query(
        TableName=ingest_stack.resources.table,
        IndexName="symbol-timestamp-index",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "symbol"},
        ExpressionAttributeValues={":s": {"S": "AAPL"}},
    )["Items"]
    assert sorted(i["timeframe"]["S"] for i in found) == ["1D", "1W"]


def test_the_rule_delivers_signal_validated_to_the_queue(ingest_stack: IngestStack) -> None:
    # GIVEN the bus rule -> SQS wiring; WHEN an alert is accepted
    _, answer = post("/webhook", alert())
    # THEN exactly one SignalValidated event with the canonical signal reaches the queue
    (event,) = queued(ingest_stack)
    assert event["source"] == "kyperian.signal.validator"
    assert event["detail-type"] == "SignalValidated"
    assert event["detail"]["signal_id"] == answer["signal_id"]
    assert event["detail"]["timeframe"] == "4h"
    assert "passphrase" not in event["detail"]


def test_duplicates_are_stored_once(ingest_stack: IngestStack) -> None:
    # GIVEN the same alert delivered three times
    ids = {post("/webhook", alert())[1]["signal_id"] for _ in range(3)}
    # THEN one row and one id; republished events carry that same id (engine dedupes)
    assert len(ids) == 1
    assert len(rows(ingest_stack)) == 1
    assert {e["detail"]["signal_id"] for e in queued(ingest_stack)} == ids


def test_mtf_is_stored_and_published_per_timeframe(ingest_stack: IngestStack) -> None:
    body: dict[str, Any] = {
        "passphrase": API_KEY,
        "symbol": "BINANCE:BTCUSDT",
        "source": "momentum",
        "price": "97000.5",
        "signals": [
            {"timeframe": "W", "action": "buy"},
            {"timeframe": "D", "action": "buy"},
            {"timeframe": "240", "action": "strong_buy", "confidence": 90},
        ],
    }
    status, answer = post("/webhook/mtf", body)
    assert status == 202
    assert sorted(i["SK"]["S"].split("#")[0] for i in rows(ingest_stack)) == ["1D", "1W", "4h"]
    assert len(queued(ingest_stack)) == 3
    # WHEN the same MTF alert arrives again with one more timeframe
    body["signals"].append({"timeframe": "60", "action": "buy"})
    status, again = post("/webhook/mtf", body)
    # THEN only the new timeframe is stored; the others are flagged as duplicates
    assert status == 202
    assert [s["duplicate"] for s in again["signals"]] == [True, True, True, False]
    assert [s["signal_id"] for s in again["signals"][:3]] == [
        s["signal_id"] for s in answer["signals"]
    ]
    assert len(rows(ingest_stack)) == 4


def test_publish_failure_is_503_and_leaves_no_row(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bus that does not exist (publishing fails after retries)
    monkeypatch.setenv("KYPERIAN_EVENT_BUS_NAME", "kyperian-test-missing-bus")
    rewire()
    # WHEN an alert arrives
    status, answer = post("/webhook", alert())
    # THEN the caller is told to retry and the stored row was undone: not half-accepted
    assert status == 503
    assert answer["error"] == "unavailable"
    assert rows(ingest_stack) == []


def test_store_failure_is_503_and_publishes_nothing(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a table that does not exist
    monkeypatch.setenv("KYPERIAN_SIGNALS_TABLE", "kyperian-test-missing-table")
    rewire()
    # WHEN single and MTF alerts arrive
    single = post("/webhook", alert())
    mtf = post(
        "/webhook/mtf",
        {
            "passphrase": API_KEY,
            "symbol": "AAPL",
            "source": "ai",
            "signals": [{"timeframe": "W", "action": "buy"}, {"timeframe": "D", "action": "buy"}],
        },
    )
    # THEN both are 503 and no event names a signal the table lacks
    assert single[0] == mtf[0] == 503
    assert queued(ingest_stack) == []


def test_retry_after_a_failed_publish_is_accepted_once(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a delivery that failed to publish (503)
    monkeypatch.setenv("KYPERIAN_EVENT_BUS_NAME", "kyperian-test-missing-bus")
    rewire()
    assert post("/webhook", alert())[0] == 503
    # WHEN the bus is back and TradingView retries
    monkeypatch.delenv("KYPERIAN_EVENT_BUS_NAME")
    rewire()
    status, answer = post("/webhook", alert())
    # THEN it is accepted as new, stored once and published once
    assert (status, answer["duplicate"]) == (202, False)
    assert len(rows(ingest_stack)) == 1
    assert [e["detail"]["signal_id"] for e in queued(ingest_stack)] == [answer["signal_id"]]


class _FailingNthPut:
    """The real (moto) client, except that put number ``n`` is refused as throttled."""

    def __init__(self, client: Any, n: int) -> None:
        self._client = client
        self._n = n
        self._puts = 0

    def put_item(self, **kwargs: Any) -> Any:
        self._puts += 1
        if self._puts == self._n:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}},
                "PutItem",
            )
        return self._client.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_failed_put_in_a_batch_undoes_the_batch(ingest_stack: IngestStack) -> None:
    # GIVEN three signals of one MTF alert, and a table that refuses the third write
    window = ArrivalWindow.at(datetime.now(UTC), 7, 300)
    signals = parse_mtf_alert(
        {
            "symbol": "AAPL",
            "source": "ai",
            "signals": [{"timeframe": tf, "action": "buy"} for tf in ("1W", "1D", "4h")],
        },
        window,
    )
    dynamodb = ingest_stack.clients["dynamodb"]
    store = DynamoSignalStore(ingest_stack.resources.table, _FailingNthPut(dynamodb, 3))
    # WHEN they are stored together
    with pytest.raises(TemporaryError):
        store.add_all(signals)
    # THEN nothing is left half-stored, and a retry stores all three
    assert rows(ingest_stack) == []
    retry = DynamoSignalStore(ingest_stack.resources.table, dynamodb)
    assert retry.add_all(signals) == set()
    assert len(rows(ingest_stack)) == 3
