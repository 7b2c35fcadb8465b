"""The engine's structured logs and CloudWatch metrics (embedded metric format on stdout).

Metrics go to namespace ``Kyperian`` with dimensions ``service=engine`` and
``environment``; per-action and per-reason metrics add one dimension. CloudWatch Logs
extracts EMF from the container's awslogs stream. ``POWERTOOLS_METRICS_DISABLED`` (and
``POWERTOOLS_DEV``) silence them, as they silence Powertools' ``Metrics``: its
``single_metric`` prints whatever the switch says, so the check is made here. Logs are
JSON (Powertools Logger) and carry the signal id being processed as ``correlation_id``,
thread-locally, so the API threads' logs never pick up the worker's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from kyperian.domain.decisions import Decision

NAMESPACE: Final = "Kyperian"
SERVICE: Final = "engine"

logger = Logger(service=SERVICE)


@contextmanager
def correlated(signal_id: str) -> Iterator[None]:
    """Tag every log line of this thread with the signal id while it is processed."""
    logger.thread_safe_append_keys(correlation_id=signal_id)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(["correlation_id"])


class EngineMetrics:
    """Named engine metrics; each call prints one EMF document."""

    def __init__(self, environment: str, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
        self._dimensions = {"service": SERVICE, "environment": environment}

    def _emit(self, name: str, unit: MetricUnit, value: float, **extra: str) -> None:
        """Print one EMF document, unless metrics are disabled (read at every call)."""
        if is_metrics_disabled():
            return
        with single_metric(
            name=name,
            unit=unit,
            value=value,
            namespace=self.namespace,
            default_dimensions=self._dimensions,
        ) as metric:
            for key, dimension in extra.items():
                metric.add_dimension(name=key, value=dimension)

    def decided(self, decision: Decision, latency_ms: float, degraded: bool) -> None:
        """SignalsProcessed, DecisionsMade by action, Vetoes by reason, PositionSize, latency."""
        self._emit("SignalsProcessed", MetricUnit.Count, 1)
        self._emit("DecisionsMade", MetricUnit.Count, 1, action=decision.action.value)
        for code in sorted({v.code for v in decision.vetoes}):
            self._emit("Vetoes", MetricUnit.Count, 1, reason=code.value)
        if decision.actionable:
            self._emit("PositionSize", MetricUnit.NoUnit, decision.position_size)
        self._emit("WebhookToDecisionLatency", MetricUnit.Milliseconds, max(0.0, latency_ms))
        if degraded:
            self._emit("DegradedMode", MetricUnit.Count, 1)

    def duplicate(self) -> None:
        """A redelivered signal that changed nothing."""
        self._emit("DuplicateSignals", MetricUnit.Count, 1)

    def poison(self) -> None:
        """A message that cannot be read; SQS moves it to the DLQ after maxReceiveCount."""
        self._emit("PoisonMessages", MetricUnit.Count, 1)

    def failed(self) -> None:
        """A message left for a retry because a dependency failed."""
        self._emit("ProcessingFailures", MetricUnit.Count, 1)

    def order(self, accepted: bool) -> None:
        """An auto-trading order the broker took (or refused)."""
        self._emit("OrdersSubmitted" if accepted else "OrdersRejected", MetricUnit.Count, 1)

    def halted(self, reason: str) -> None:
        """The kill switch was set, by a person or by reconciliation (the log says which)."""
        self._emit("TradingHalted", MetricUnit.Count, 1)
        logger.warning("trading halted", extra={"reason": reason})

    def reconciliation(self, mismatches: int) -> None:
        """Differences the last reconciliation found between the ledger and the venue."""
        self._emit("ReconciliationMismatches", MetricUnit.Count, mismatches)

    def refused(self, reason: str) -> None:
        """An API request refused: ``unauthenticated``, ``csrf`` or ``unavailable``."""
        self._emit("EngineRequestsRefused", MetricUnit.Count, 1, reason=reason)

    def schwab_refresh_token_days(self, days: float) -> None:
        """Days before the Schwab refresh token expires; an alarm fires days ahead."""
        self._emit("SchwabRefreshTokenDaysLeft", MetricUnit.Count, round(days, 2))
