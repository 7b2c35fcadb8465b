"""One queue message in, at most one stored decision and one order out: the engine's rules.

For each ``SignalValidated`` envelope: claim the signal id (a redelivery changes
nothing), keep the signal in the cache and read the symbol's other timeframes (or read
them from the Signals table while Redis is down), fuse with the exposure of the shared
ledger's book, store the decision once per signal (the table enforces it, keyed by the
signal id), cache it, and, with auto-trading on, make sure an actionable decision has
exactly one order (``kyperian.execution``). A redelivered signal whose decision is stored
goes through that last step again instead of being skipped, so a crash between deciding
and ordering is repaired, never repeated. The outcome tells the worker whether the
message may be deleted: never while an actionable decision has neither an order nor a
recorded refusal. Adapters and queues stay behind ``kyperian.domain.engine_ports``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from pydantic import ValidationError

from kyperian.domain.activity import DecisionObserver, notify_all
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import (
    Claim,
    DecisionStore,
    DuplicateDecision,
    ProcessedSignals,
    QueueMessage,
    SignalCache,
    SignalHistory,
)
from kyperian.domain.errors import KyperianError, TemporaryError
from kyperian.domain.models import Signal
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.telemetry import EngineMetrics, correlated, logger
from kyperian.execution import Execution, ExecutionKind, OrderExecutor
from kyperian.fusion import FusionRules, fuse

DETAIL_TYPE: Final = "SignalValidated"


class PoisonMessage(KyperianError):
    """The message can never be processed; it stays until SQS moves it to the DLQ."""


class Outcome(StrEnum):
    DECIDED = "DECIDED"
    DUPLICATE = "DUPLICATE"
    BUSY = "BUSY"
    RETRY = "RETRY"
    POISON = "POISON"

    @property
    def delete(self) -> bool:
        """Only a processed or already-processed signal is removed from the queue."""
        return self in {Outcome.DECIDED, Outcome.DUPLICATE}


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    signal_id: str | None = None
    decision: Decision | None = None
    degraded: bool = False


def parse_envelope(body: str) -> Signal:
    """The signal inside an EventBridge ``SignalValidated`` envelope.

    Raises
    ------
    PoisonMessage
        The body is not JSON, not that event, or its ``detail`` is not a valid signal.
    """
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"body is not JSON: {exc.msg}") from exc
    if not isinstance(envelope, dict) or envelope.get("detail-type") != DETAIL_TYPE:
        kind = (
            envelope.get("detail-type") if isinstance(envelope, dict) else type(envelope).__name__
        )
        raise PoisonMessage(f"not a {DETAIL_TYPE} event: {kind!r}")
    try:
        return Signal.model_validate(envelope.get("detail"))
    except ValidationError as exc:
        raise PoisonMessage(f"detail is not a valid signal: {exc.error_count()} error(s)") from exc


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SignalProcessor:
    """Processes one message at a time; safe to call from a single worker thread."""

    def __init__(
        self,
        *,
        cache: SignalCache,
        processed: ProcessedSignals,
        decisions: DecisionStore,
        history: SignalHistory,
        rules: FusionRules,
        circuit: CacheCircuit,
        metrics: EngineMetrics,
        execution: OrderExecutor | None = None,
        auto_trading: bool = False,
        lease_seconds: int = 60,
        clock: Callable[[], datetime] = _utc_now,
        observers: Sequence[DecisionObserver] = (),
        order_observers: Sequence[Callable[[Execution], None]] = (),
    ) -> None:
        self.cache = cache
        self.processed = processed
        self.decisions = decisions
        self.history = history
        self.rules = rules
        self.circuit = circuit
        self.metrics = metrics
        self.execution = execution
        self.auto_trading = auto_trading and execution is not None
        self.lease_seconds = lease_seconds
        self._clock = clock
        self.observers = tuple(observers)
        self.order_observers = tuple(order_observers)
        self._warmed: set[str] = set()
        self._warmed_generation = circuit.generation

    def handle(self, message: QueueMessage) -> Result:
        """Process one message; never raises (the outcome says what to do with it)."""
        try:
            signal = parse_envelope(message.body)
        except PoisonMessage as exc:
            logger.error(
                "unreadable message left for the dead-letter queue",
                extra={
                    "message_id": message.message_id,
                    "receive_count": message.receive_count,
                    "reason": str(exc),
                },
            )
            self.metrics.poison()
            return Result(Outcome.POISON)
        with correlated(signal.signal_id):
            return self._guarded(signal, message)

    def _guarded(self, signal: Signal, message: QueueMessage) -> Result:
        try:
            return self._process(signal)
        except KyperianError as exc:
            logger.warning(
                "signal left for a retry",
                extra={
                    "reason": str(exc),
                    "error": type(exc).__name__,
                    "receive_count": message.receive_count,
                },
            )
        except Exception:
            logger.exception(
                "unexpected failure; signal left for a retry",
                extra={"receive_count": message.receive_count},
            )
        self._release(signal.signal_id)
        self.metrics.failed()
        return Result(Outcome.RETRY, signal.signal_id)

    def _process(self, signal: Signal) -> Result:
        claim = self._claim(signal.signal_id)
        if claim is Claim.DONE:
            self.metrics.duplicate()
            logger.info("duplicate signal: already processed")
            return Result(Outcome.DUPLICATE, signal.signal_id)
        if claim is Claim.BUSY:
            logger.info("signal is being processed by another worker")
            return Result(Outcome.BUSY, signal.signal_id)
        now = self._clock()
        signals, degraded = self._gather(signal, now)
        decision = self._decide(signal, signals, now)
        try:
            self.decisions.record(decision)
        except DuplicateDecision:
            return self._already_decided(signal)
        if not degraded:
            self._cache_decision(decision)
        self._report(signal, decision, now, degraded)
        self._observe(signal, decision, degraded)
        if not self._trade(decision):
            return self._order_unresolved(signal, decision)
        self._finish(signal.signal_id)
        return Result(Outcome.DECIDED, signal.signal_id, decision, degraded)

    # --- idempotency ----------------------------------------------------------------------

    def _claim(self, signal_id: str) -> Claim | None:
        """The register's answer, or None when Redis is down (the table still dedupes)."""
        if not self.circuit.should_try():
            return None
        try:
            claim = self.processed.claim(signal_id, self.lease_seconds)
        except KyperianError as exc:
            self.circuit.failed(str(exc))
            return None
        self.circuit.succeeded()
        return claim

    def _finish(self, signal_id: str) -> None:
        if self.circuit.degraded:
            return
        try:
            self.processed.finish(signal_id)
        except KyperianError as exc:
            self.circuit.failed(str(exc))

    def _release(self, signal_id: str) -> None:
        if self.circuit.degraded:
            return
        try:
            self.processed.release(signal_id)
        except KyperianError as exc:
            self.circuit.failed(str(exc))

    def _already_decided(self, signal: Signal) -> Result:
        """The table holds this signal's decision: decide nothing, but make sure of its order."""
        existing = self.decisions.for_trigger(signal)
        if existing is None:
            raise TemporaryError(f"decision of signal {signal.signal_id} not readable yet")
        if not self._trade(existing):
            return self._order_unresolved(signal, existing)
        self._finish(signal.signal_id)
        self.metrics.duplicate()
        logger.info(
            "duplicate signal: decision already stored",
            extra={"decision_id": existing.decision_id},
        )
        return Result(Outcome.DUPLICATE, signal.signal_id, existing)

    def _order_unresolved(self, signal: Signal, decision: Decision) -> Result:
        """Keep the message: its redelivery reconciles the order with the venue."""
        self._release(signal.signal_id)
        self.metrics.failed()
        logger.warning(
            "order not settled; message kept for a retry",
            extra={"decision_id": decision.decision_id},
        )
        return Result(Outcome.RETRY, signal.signal_id, decision)

    # --- signals and decisions ------------------------------------------------------------

    def _gather(self, signal: Signal, now: datetime) -> tuple[list[Signal], bool]:
        """The symbol's signals from the cache, or from the table when the cache is down."""
        if self._warmed_generation != self.circuit.generation:
            self._warmed.clear()
            self._warmed_generation = self.circuit.generation
        stored: list[Signal] | None = None
        if self.circuit.should_try():
            if signal.symbol not in self._warmed:
                stored = self.history.recent(signal.symbol, now)
            try:
                self.cache.record_all(stored or [])
                signals = self.cache.record_and_read(signal)
            except KyperianError as exc:
                self.circuit.failed(str(exc))
            else:
                self.circuit.succeeded()
                self._warmed.add(signal.symbol)
                return signals, False
        if stored is None:
            stored = self.history.recent(signal.symbol, now)
        return [*stored, signal], True

    def _decide(self, signal: Signal, signals: list[Signal], now: datetime) -> Decision:
        exposure = self.execution.exposure(signal.symbol, signal.price) if self.execution else 0.0
        decision = fuse(
            signals,
            self.rules,
            now,
            symbol=signal.symbol,
            exposure=exposure,
            trigger=signal,
        )
        veto = self.execution.risk_veto(decision) if self.execution else None
        if veto is None:
            return decision
        return decision.model_copy(
            update={"vetoes": (*decision.vetoes, veto), "position_size": 0.0}
        )

    def _cache_decision(self, decision: Decision) -> None:
        try:
            self.cache.put_decision(decision)
        except KyperianError as exc:
            self.circuit.failed(str(exc))

    def _trade(self, decision: Decision) -> bool:
        """Make sure an actionable decision has its one order; False while that is unsettled."""
        if not self.auto_trading or self.execution is None or not decision.actionable:
            return True
        execution = self.execution.execute(decision)
        if execution is None:
            return True
        self._report_order(execution)
        return execution.resolved

    def _report_order(self, execution: Execution) -> None:
        order = execution.order
        details = {
            "client_order_id": order.client_order_id,
            "venue_order_id": order.venue_order_id,
            "state": order.state.value,
            "quantity": str(order.quantity),
            "reason": order.reason,
        }
        if execution.settled_before:  # a redelivery: counted and notified the first time
            logger.info("order already settled", extra=details)
            return
        if execution.kind is ExecutionKind.ORDERED:
            self.metrics.order(accepted=True)
            logger.info("order placed", extra=details)
        elif execution.kind is ExecutionKind.PENDING_APPROVAL:
            logger.info("order waiting for approval", extra=details)
        elif execution.kind is ExecutionKind.REFUSED:
            self.metrics.order(accepted=False)
            logger.warning("order refused", extra=details)
        else:
            logger.error("order outcome unknown; reconciling on the next delivery", extra=details)
        for observer in self.order_observers:  # order notices (kyperian.adapters.notify.orders)
            try:
                observer(execution)
            except Exception as exc:  # an observer's bug must never undo an order
                logger.warning("order observer failed", extra={"error": type(exc).__name__})

    def _observe(self, signal: Signal, decision: Decision, degraded: bool) -> None:
        """Cockpit feed and notifications (observers must be quick; a failure is only logged)."""
        for failure in notify_all(self.observers, signal, decision, degraded):
            logger.warning(
                "decision observer failed", extra={"error": f"{type(failure).__name__}: {failure}"}
            )

    def _report(self, signal: Signal, decision: Decision, now: datetime, degraded: bool) -> None:
        latency_ms = (now - signal.received_at).total_seconds() * 1000
        self.metrics.decided(decision, latency_ms, degraded)
        logger.info(
            "decision made",
            extra={
                "symbol": decision.symbol,
                "decision_id": decision.decision_id,
                "action": decision.action.value,
                "score": round(decision.score, 4),
                "confidence": round(decision.confidence, 4),
                "position_size": round(decision.position_size, 6),
                "vetoes": [v.code.value for v in decision.vetoes],
                "degraded": degraded,
            },
        )
