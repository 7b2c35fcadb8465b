"""The real wiring (``build_services``) on a real redis-server and moto: queue to decision."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.domain.models import Signal
from kyperian.engine.services import EngineServices, build_services
from kyperian.engine.worker import QueueWorker
from kyperian.settings import Settings
from tests.integration.engine.conftest import EngineAws, RedisServer, ttl
from tests.signal_factory import envelope, make_signal

pytestmark = pytest.mark.integration


def _settings(engine_aws: EngineAws, redis_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "signal_queue_url": engine_aws.queue_url,
        "redis_port": redis_port,
        "redis_retry_seconds": 0.2,
        "worker_wait_seconds": 0,
    }
    return Settings(**(values | overrides))


def _services(settings: Settings) -> Iterator[EngineServices]:
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


@pytest.fixture
def services(
    engine_aws: EngineAws, redis_client: redis.Redis, redis_server: RedisServer
) -> Iterator[EngineServices]:
    yield from _services(_settings(engine_aws, redis_server.port))


def _worker(services: EngineServices) -> QueueWorker:
    assert services.worker is not None
    return services.worker


def _arrive(engine_aws: EngineAws, *signals: Signal) -> None:
    """What the validator does: store the signal, then publish it (here: straight to the queue)."""
    store = DynamoSignalStore(engine_aws.signals_table, engine_aws.dynamodb)
    for signal in signals:
        store.add(signal)
        engine_aws.sqs.send_message(QueueUrl=engine_aws.queue_url, MessageBody=envelope(signal))


def _signal(**fields: Any) -> Signal:
    return make_signal(at=datetime.now(UTC) - timedelta(seconds=1), **fields)


def _decisions(engine_aws: EngineAws) -> list[dict[str, Any]]:
    items = engine_aws.dynamodb.scan(TableName=engine_aws.decisions_table)["Items"]
    return [i for i in items if i["PK"]["S"].startswith("DECISION#")]


def test_a_signal_becomes_a_stored_cached_decision_and_its_message_is_deleted(
    services: EngineServices, engine_aws: EngineAws, redis_client: redis.Redis
) -> None:
    # GIVEN a 1D and a 4h BUY arriving through the queue
    _arrive(
        engine_aws,
        _signal(timeframe="1D", source="technicals", confidence=90),
        _signal(timeframe="4h", confidence=90),
    )

    # WHEN the worker processes a batch
    report = _worker(services).run_once()

    # THEN both are deleted, two decisions are stored, and the latest is cached for 5 minutes
    assert (report.received, report.deleted) == (2, 2)
    assert len(_decisions(engine_aws)) == 2
    cached = services.cache.latest_decision("AAPL")
    assert cached is not None
    assert set(cached.signal_ids) == {s["signal_id"]["S"] for s in _stored_signals(engine_aws)}
    assert 0 < ttl(redis_client, "kyperian:decision:AAPL") <= 300


def _stored_signals(engine_aws: EngineAws) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = engine_aws.dynamodb.scan(TableName=engine_aws.signals_table)[
        "Items"
    ]
    return items


def test_a_redelivered_message_changes_nothing(
    services: EngineServices, engine_aws: EngineAws
) -> None:
    # GIVEN a processed signal
    signal = _signal(timeframe="4h")
    _arrive(engine_aws, signal)
    _worker(services).run_once()

    # WHEN EventBridge/SQS deliver it again
    engine_aws.sqs.send_message(QueueUrl=engine_aws.queue_url, MessageBody=envelope(signal))
    report = _worker(services).run_once()

    # THEN the duplicate is deleted and there is still one decision
    assert report.deleted == 1
    assert len(_decisions(engine_aws)) == 1


def test_a_poison_message_reaches_the_dead_letter_queue(
    services: EngineServices, engine_aws: EngineAws
) -> None:
    # GIVEN an unreadable message, and a worker whose messages come back at once
    engine_aws.sqs.send_message(
        QueueUrl=engine_aws.queue_url, MessageBody='{"detail-type": "SignalValidated"}'
    )
    worker = _worker(services)
    worker.visibility_seconds = 0

    # WHEN the worker keeps receiving it
    kept = [worker.run_once().kept for _ in range(engine_aws.max_receive_count + 1)]

    # THEN it was never deleted, and SQS moved it to the DLQ after maxReceiveCount receives
    assert kept == [1] * engine_aws.max_receive_count + [0]
    dlq = engine_aws.sqs.receive_message(QueueUrl=engine_aws.dlq_url, WaitTimeSeconds=0)
    assert len(dlq.get("Messages", [])) == 1


def test_redis_outage_degrades_then_recovers_by_itself(
    engine_aws: EngineAws, tmp_path: Path
) -> None:
    # GIVEN an engine on its own redis-server, which has decided one signal
    server = RedisServer(tmp_path).start()
    try:
        for services in _services(_settings(engine_aws, server.port)):
            worker = _worker(services)
            _arrive(engine_aws, _signal(timeframe="1D", source="technicals", confidence=90))
            worker.run_once()

            # WHEN Redis dies and a signal arrives
            server.stop()
            during = _signal(timeframe="4h", confidence=90)
            _arrive(engine_aws, during)
            outage = worker.run_once()

            # THEN it is still decided (from the Signals table), in degraded mode
            assert outage.deleted == 1
            assert services.circuit.degraded
            assert len(_decisions(engine_aws)) == 2
            latest = services.decisions.latest("AAPL")
            assert latest is not None
            assert len(latest.signal_ids) == 2

            # WHEN Redis returns (empty) and, after the retry interval, another signal arrives
            server.start()
            time.sleep(0.3)
            _arrive(engine_aws, _signal(timeframe="1h", confidence=90))
            recovered = worker.run_once()

            # THEN the engine left degraded mode by itself and refilled what Redis lost
            assert recovered.deleted == 1
            assert not services.circuit.degraded
            cached = {s.signal_id for s in services.cache.latest_signals("AAPL")}
            assert during.signal_id in cached
            assert len(cached) == 3
    finally:
        server.stop()


def test_stopping_the_thread_loses_no_message(
    services: EngineServices, engine_aws: EngineAws
) -> None:
    # GIVEN twenty signals queued and the worker running on its thread
    signals = [
        _signal(timeframe="4h", source="luxalgo", signal_id=f"stop-{i:02d}") for i in range(20)
    ]
    _arrive(engine_aws, *signals)
    worker = _worker(services)
    worker.start()

    # WHEN it is stopped while working
    time.sleep(0.2)
    assert worker.stop(timeout=25)

    # THEN every signal is either decided or still waiting in the queue
    decided = {i["trigger_signal_id"]["S"] for i in _decisions(engine_aws)}
    waiting = set()
    while batch := engine_aws.sqs.receive_message(
        QueueUrl=engine_aws.queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        VisibilityTimeout=60,
    ).get("Messages"):
        waiting |= {m["Body"] for m in batch}
    waiting_ids = {json.loads(body)["detail"]["signal_id"] for body in waiting}
    assert decided | waiting_ids == {s.signal_id for s in signals}
