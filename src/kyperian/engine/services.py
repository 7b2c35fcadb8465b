"""Wiring: build the engine's adapters, processor and worker from settings, once per process.

The only place that knows which concrete adapter backs each port. Tests build an
``EngineServices`` from in-memory doubles or moto-backed adapters instead and hand it to
``create_app``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.signal_history import DynamoSignalHistory
from kyperian.adapters.aws.sqs import SqsWorkQueue
from kyperian.adapters.brokers.paper import PaperBroker, PaperBrokerConfig
from kyperian.adapters.cache.redis import RedisCache, build_client
from kyperian.domain.engine_ports import DecisionStore, SignalCache, SignalHistory
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.telemetry import EngineMetrics, logger
from kyperian.engine.trading import AutoTrader
from kyperian.engine.worker import QueueWorker
from kyperian.fusion import FusionRules
from kyperian.settings import Settings

_POLL_MARGIN_SECONDS: Final = 10


@dataclass
class EngineServices:
    """Everything the API and the worker share."""

    settings: Settings
    rules: FusionRules
    cache: SignalCache
    decisions: DecisionStore
    history: SignalHistory
    circuit: CacheCircuit
    broker: PaperBroker
    processor: SignalProcessor
    worker: QueueWorker | None
    redis: RedisCache | None = None

    def close(self) -> None:
        """Release pooled connections at shutdown."""
        if self.redis is not None:
            self.redis.close()


def _worker(settings: Settings, processor: SignalProcessor) -> QueueWorker | None:
    if not settings.worker_enabled or not settings.signal_queue_url:
        logger.warning("SQS worker disabled: no KYPERIAN_SIGNAL_QUEUE_URL or worker_enabled=false")
        return None
    # A long poll holds the connection open for wait_seconds: the read timeout must outlast it.
    read_timeout = settings.worker_wait_seconds + _POLL_MARGIN_SECONDS
    queue = SqsWorkQueue(
        settings.signal_queue_url, make_client("sqs", settings, read_timeout=read_timeout)
    )
    return QueueWorker(
        queue,
        processor,
        batch_size=settings.worker_batch_size,
        wait_seconds=settings.worker_wait_seconds,
        visibility_seconds=settings.worker_visibility_seconds,
        concurrency=settings.worker_concurrency,
    )


def build_services(settings: Settings) -> EngineServices:
    """Real adapters: Redis, DynamoDB, SQS and the paper broker."""
    rules = settings.fusion
    redis = RedisCache(
        build_client(settings), processed_ttl_seconds=settings.processed_marker_ttl_seconds
    )
    dynamodb = make_client("dynamodb", settings)
    decisions = DynamoDecisionStore(settings.decisions_table, dynamodb, settings.decision_ttl_days)
    history = DynamoSignalHistory(settings.signals_table, dynamodb, rules.max_age_seconds)
    circuit = CacheCircuit(settings.redis_retry_seconds)
    broker = PaperBroker(PaperBrokerConfig(starting_cash=settings.paper_starting_cash))
    processor = SignalProcessor(
        cache=redis,
        processed=redis,
        decisions=decisions,
        history=history,
        rules=rules,
        circuit=circuit,
        metrics=EngineMetrics(settings.environment),
        trader=AutoTrader(broker) if settings.auto_trading else None,
        lease_seconds=settings.worker_visibility_seconds,
    )
    return EngineServices(
        settings=settings,
        rules=rules,
        cache=redis,
        decisions=decisions,
        history=history,
        circuit=circuit,
        broker=broker,
        processor=processor,
        worker=_worker(settings, processor),
        redis=redis,
    )
