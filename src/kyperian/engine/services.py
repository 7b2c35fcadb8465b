"""Wiring: build the engine's adapters, processor and worker from settings, once per process.

The only place that knows which concrete adapter backs each port. Tests build an
``EngineServices`` from in-memory doubles or moto-backed adapters instead and hand it to
``create_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.alarms import CloudWatchAlarms, DynamoAlarmStates
from kyperian.adapters.aws.clients import classify, make_client
from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.adapters.aws.paper_venue import DynamoPaperVenueStore
from kyperian.adapters.aws.signal_history import DynamoSignalHistory
from kyperian.adapters.aws.sqs import SqsWorkQueue
from kyperian.adapters.aws.symbol_index import DynamoSymbolIndex
from kyperian.adapters.brokers.paper import PaperBroker, PaperBrokerConfig
from kyperian.adapters.brokers.venues import Venues
from kyperian.adapters.cache.activity import RedisActivityFeed
from kyperian.adapters.cache.redis import RedisCache, build_client
from kyperian.adapters.notify import NotificationDispatcher, build_dispatcher
from kyperian.adapters.notify.orders import MismatchNotifier, OrderNotifier
from kyperian.domain.activity import ActivityFeed, SymbolIndex
from kyperian.domain.brokers import Broker
from kyperian.domain.engine_ports import DecisionStore, SignalCache, SignalHistory
from kyperian.engine.alarm_watch import AlarmWatch
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.reconciler import Reconciler
from kyperian.engine.telemetry import EngineMetrics, logger
from kyperian.engine.ui.recorder import ActivityRecorder
from kyperian.engine.venue_watch import VenueWatch
from kyperian.engine.worker import QueueWorker
from kyperian.execution import AccountKey, BookLimits, Ledger, OrderExecutor
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
    ledger: Ledger | None = None
    execution: OrderExecutor | None = None
    reconciler: Reconciler | None = None
    # --- cockpit and notifications ---
    feed: ActivityFeed | None = None
    symbols: SymbolIndex | None = None
    notifier: NotificationDispatcher | None = None
    queue_depth: Callable[[], int] | None = None
    venues: Venues = field(default=None)  # type: ignore[assignment]  # built from settings
    """The live venues (``/broker/alpaca|ibkr|tda``), each built on first use."""
    watch: VenueWatch | None = None
    alarms: AlarmWatch | None = None
    """Forwards the stack's CloudWatch alarm changes to the channels (started by the lifespan)."""

    def __post_init__(self) -> None:
        if self.venues is None:
            self.venues = Venues(self.settings)

    def close(self) -> None:
        """Stop the reconciliation loop and the notification senders, release connections."""
        if self.reconciler is not None:
            self.reconciler.stop()
        if self.watch is not None:
            self.watch.stop()
        if self.alarms is not None:
            self.alarms.stop()
        self.venues.close()
        if self.notifier is not None:
            self.notifier.stop(timeout=2.0)  # what is left is dead-lettered, never lost silently
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
        concurrency=worker_lanes(settings),
    )


def worker_lanes(settings: Settings) -> int:
    """Lanes for a batch: one while auto trading, ``worker_concurrency`` otherwise.

    Trading checks the book's gross exposure limit against a recent book, not a locked one:
    two symbols decided at once could each pass the limit the pair exceeds. One lane keeps
    the limit exact; without trading, lanes change nothing but the speed.
    """
    return 1 if settings.auto_trading else settings.worker_concurrency


def _queue_depth(settings: Settings) -> Callable[[], int] | None:
    """Messages waiting in the signal queue (visible ones), for the cockpit's health panel."""
    url = settings.signal_queue_url
    if not url:
        return None
    sqs = make_client("sqs", settings)

    def depth() -> int:
        try:
            attributes = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the queue depth") from exc
        return int(attributes["ApproximateNumberOfMessages"])

    return depth


def build_services(settings: Settings) -> EngineServices:
    """Real adapters: Redis, DynamoDB (decisions, signals, ledger), SQS, the paper venue and the
    configured live venues; orders go to ``KYPERIAN_BROKER_VENUE``."""
    rules = settings.fusion
    redis_client = build_client(settings)
    redis = RedisCache(redis_client, processed_ttl_seconds=settings.processed_marker_ttl_seconds)
    dynamodb = make_client("dynamodb", settings)
    decisions = DynamoDecisionStore(settings.decisions_table, dynamodb, settings.decision_ttl_days)
    history = DynamoSignalHistory(settings.signals_table, dynamodb, rules.max_age_seconds)
    circuit = CacheCircuit(settings.redis_retry_seconds)
    ledger = DynamoLedger(settings.ledger_table, dynamodb)
    broker = PaperBroker(
        DynamoPaperVenueStore(settings.ledger_table, dynamodb, settings.paper_account_id),
        PaperBrokerConfig(
            account_id=settings.paper_account_id, starting_cash=settings.paper_starting_cash
        ),
    )
    metrics = EngineMetrics(settings.environment)
    venues = Venues(settings, on_schwab_token=metrics.schwab_refresh_token_days)
    venue, account_id = _executing_venue(settings, broker, venues)
    execution = OrderExecutor(
        ledger,
        venue,
        AccountKey(venue=venue.name, account_id=account_id),
        approval=settings.approval_mode,
        approval_seconds=settings.approval_seconds,
        lease_seconds=settings.order_lease_seconds,
        max_gross_exposure=settings.max_gross_exposure,
        limits=BookLimits(
            max_daily_loss=settings.max_daily_loss,
            max_orders_per_minute=settings.max_orders_per_minute,
            stop_out_cooldown_seconds=settings.stop_out_cooldown_seconds,
        ),
    )
    # --- cockpit and notifications (kyperian.engine.ui, kyperian.adapters.notify) ---
    feed = RedisActivityFeed(redis_client)
    symbols = DynamoSymbolIndex(
        settings.decisions_table,
        dynamodb,
        settings.decision_ttl_days,
        settings.symbol_index_refresh_seconds,
    )
    notifier = build_dispatcher(settings)
    processor = SignalProcessor(
        cache=redis,
        processed=redis,
        decisions=decisions,
        history=history,
        rules=rules,
        circuit=circuit,
        metrics=metrics,
        execution=execution,
        auto_trading=settings.auto_trading,
        lease_seconds=settings.worker_visibility_seconds,
        observers=(ActivityRecorder(feed, symbols, circuit), notifier),
        order_observers=(OrderNotifier(notifier),),
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
        ledger=ledger,
        execution=execution,
        reconciler=Reconciler(
            execution,
            EngineMetrics(settings.environment),
            settings.reconcile_seconds,
            on_mismatch=MismatchNotifier(notifier),
        ),
        feed=feed,
        symbols=symbols,
        notifier=notifier,
        queue_depth=_queue_depth(settings),
        venues=venues,
        watch=VenueWatch.start_for(venues),
        alarms=alarm_watch(settings, notifier),
    )


def alarm_watch(settings: Settings, notifier: NotificationDispatcher) -> AlarmWatch | None:
    """The alarm watcher (not started), or None when it is off or no channel would listen."""
    if settings.alarm_watch_seconds <= 0 or not notifier.channels:
        return None
    return AlarmWatch(
        CloudWatchAlarms(make_client("cloudwatch", settings), f"kyperian-{settings.environment}-"),
        DynamoAlarmStates(
            settings.decisions_table,
            make_client("dynamodb", settings),
            settings.aws_region,
            settings.decision_ttl_days,
        ),
        notifier.submit,
        settings.alarm_watch_seconds,
    )


def _executing_venue(settings: Settings, paper: PaperBroker, venues: Venues) -> tuple[Broker, str]:
    """The venue the ledger's orders go to (KYPERIAN_BROKER_VENUE) and its ledger account id.

    A live venue named but not configured stops the start (``VenueNotConfigured`` names the
    setting). Paper and live accounts of one venue never share ledger rows.
    """
    if settings.broker_venue == "paper":
        return paper, settings.paper_account_id
    broker = venues.get(settings.broker_venue)
    mode = "paper" if broker.caps.paper else "live"
    logger.warning("orders go to a live venue", extra={"venue": broker.name, "mode": mode})
    return broker, f"{broker.name}-{mode}"
