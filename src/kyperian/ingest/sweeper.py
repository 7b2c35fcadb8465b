"""The sweeper: publishes signals whose rows were left pending, then marks them published.

A row stays pending when its request could not finish: the undo after a failed publish
failed too (``UndoFailed``), an alert was only partly published, the mark after a publish
failed, or the Lambda died between storing and publishing. Each such row is a signal the
table holds and the engine may not have seen, so the sweeper rolls it forward: publish
(the engine is idempotent by signal id, so one already published costs nothing), then mark.
It never deletes: removing a row whose event did go out would leave an event without its
row. It runs every minute as its own Lambda (``kyperian.ingest.sweeper.lambda_handler``,
scheduled in ``cloudformation/api.yaml``) and only looks at rows older than
``sweep_after_seconds``, well past the webhook's 10 s timeout, so it never races a live
request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.utilities.typing import LambdaContext

from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.eventbridge import EventBridgePublisher
from kyperian.domain.errors import PublishFailed
from kyperian.domain.ports import SignalPublisher, SignalStore
from kyperian.ingest.handler import METRICS_NAMESPACE, ingest_client
from kyperian.settings import get_settings

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "signal-sweeper"))
metrics = Metrics(namespace=METRICS_NAMESPACE)


@dataclass(frozen=True)
class SweepResult:
    """What one run found and completed."""

    found: int
    published: int


class Sweeper:
    """Rolls pending rows forward: publish, then mark published."""

    def __init__(self, store: SignalStore, publisher: SignalPublisher) -> None:
        self._store = store
        self._publisher = publisher

    def sweep(self, now: datetime, after: timedelta, limit: int) -> SweepResult:
        """Publish and mark the rows pending since before ``now - after`` (at most ``limit``).

        Raises
        ------
        TemporaryError, OperationalError
            The table or the bus failed; the rows stay pending for the next run.
        """
        pending = self._store.unpublished(now - after, limit)
        if not pending:
            return SweepResult(0, 0)
        try:
            self._publisher.publish(pending)
        except PublishFailed as exc:
            failed = set(exc.signal_ids)
            published = [s for s in pending if s.signal_id not in failed]
            logger.warning(
                "some pending signals could not be published; next run retries",
                extra={"signal_ids": sorted(failed), "error": str(exc)},
            )
        else:
            published = list(pending)
        if published:
            self._store.mark_published(published)
        logger.info(
            "pending signals published",
            extra={"signal_ids": [s.signal_id for s in published], "found": len(pending)},
        )
        return SweepResult(len(pending), len(published))


def _flushed(handler: Callable[..., dict[str, int]]) -> Callable[..., dict[str, int]]:
    """``metrics.log_metrics``, which also drops the run's metrics when they are disabled.

    Powertools' ``flush_metrics`` prints and clears only when metrics are enabled; disabled,
    it keeps them, so a warm container would carry every run's metrics into the next.
    """
    logged = metrics.log_metrics(handler)

    @wraps(handler)
    def decorated(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
        try:
            answer: dict[str, int] = logged(event, context)
            return answer
        finally:
            if is_metrics_disabled():
                metrics.clear_metrics()

    return decorated


@_flushed
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    """Scheduled every minute; a failure raises, so the Lambda Errors metric shows it."""
    settings = get_settings()
    metrics.set_default_dimensions(service=logger.service, environment=settings.environment)
    sweeper = Sweeper(
        DynamoSignalStore(settings.signals_table, ingest_client("dynamodb", settings)),
        EventBridgePublisher(
            settings.event_bus_name,
            ingest_client("events", settings, attempts=1),
            attempts=settings.publish_attempts,
        ),
    )
    result = sweeper.sweep(
        datetime.now(UTC), timedelta(seconds=settings.sweep_after_seconds), settings.sweep_batch
    )
    metrics.add_metric(name="SignalsSwept", unit=MetricUnit.Count, value=result.published)
    return {"found": result.found, "published": result.published}
