"""Wiring: build the engine's adapters, processor and worker from settings, once per process.

The only place that knows which concrete adapter backs each port. Tests build an
``EngineServices`` from in-memory doubles or moto-backed adapters instead and hand it to
``create_app``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.signal_history import DynamoSignalHistory
from kyperian.adapters.aws.sqs import SqsWorkQueue
from kyperian.adapters.brokers.paper import PaperBroker, PaperBrokerConfig
from kyperian.adapters.brokers.venues import Venues
from kyperian.adapters.cache.redis import RedisCache, build_client
from kyperian.domain.brokers import Broker
from kyperian.domain.engine_ports import DecisionStore, SignalCache, SignalHistory
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.telemetry import EngineMetrics, logger
from kyperian.engine.trading import AutoTrader
from kyperian.engine.venue_watch import VenueWatch
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
    venues: Venues = field(default=None)  # type: ignore[assignment]  # built from settings
    """The live venues (``/broker/alpaca|ibkr|tda``), each built on first use."""
    watch: VenueWatch | None = None

    def __post_init__(self) -> None:
        if self.venues is None:
            self.venues = Venues(self.settings)

    def close(self) -> None:
        """Release pooled connections at shutdown."""
        if self.watch is not None:
            self.watch.stop()
        self.venues.close()
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
    )


def build_services(settings: Settings) -> EngineServices:
    """Real adapters: Redis, DynamoDB, SQS, the paper broker and the configured live venues."""
    rules = settings.fusion
    redis = RedisCache(
        build_client(settings), processed_ttl_seconds=settings.processed_marker_ttl_seconds
    )
    dynamodb = make_client("dynamodb", settings)
    decisions = DynamoDecisionStore(settings.decisions_table, dynamodb, settings.decision_ttl_days)
    history = DynamoSignalHistory(settings.signals_table, dynamodb, rules.max_age_seconds)
    circuit = CacheCircuit(settings.redis_retry_seconds)
    broker = PaperBroker(PaperBrokerConfig(starting_cash=settings.paper_starting_cash))
    metrics = EngineMetrics(settings.environment)
    venues = Venues(settings, on_schwab_token=metrics.schwab_refresh_token_days)
    executing = _executing_venue(settings, broker, venues)
    processor = SignalProcessor(
        cache=redis,
        processed=redis,
        decisions=decisions,
        history=history,
        rules=rules,
        circuit=circuit,
        metrics=metrics,
        trader=AutoTrader(executing) if settings.auto_trading else None,
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
        venues=venues,
        watch=VenueWatch.start_for(venues),
    )


def _executing_venue(settings: Settings, paper: PaperBroker, venues: Venues) -> Broker:
    """The venue decisions are sent to (KYPERIAN_BROKER_VENUE); a missing one stops the start."""
    if settings.broker_venue == "paper":
        return paper
    broker = venues.get(settings.broker_venue)  # VenueNotConfigured names the setting
    logger.warning(
        "auto-trading venue is live", extra={"venue": broker.name, "paper": broker.caps.paper}
    )
    return broker
