"""Keeps the cockpit's feed and symbol index up to date as decisions are made.

A ``DecisionObserver`` the processor calls after storing a decision, on the worker
thread. Its cost there: one Redis pipeline (well under a millisecond) and, at most once
per symbol per ``symbol_index_refresh_seconds``, one DynamoDB put. While Redis is down
(degraded mode) it skips the feed rather than wait for a socket timeout on every message.
Failures are logged, never raised: the cockpit is a view, the decision already stands.
"""

from __future__ import annotations

from kyperian.domain.activity import ActivityFeed, FeedEntry, SymbolIndex
from kyperian.domain.decisions import Decision
from kyperian.domain.errors import KyperianError
from kyperian.domain.models import Signal
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.telemetry import logger


class ActivityRecorder:
    """Appends each decision to the feed and notes its symbol in the index."""

    def __init__(self, feed: ActivityFeed, index: SymbolIndex, circuit: CacheCircuit) -> None:
        self._feed = feed
        self._index = index
        self._circuit = circuit

    def __call__(self, signal: Signal, decision: Decision, degraded: bool) -> None:
        if not degraded and not self._circuit.degraded:
            try:
                self._feed.append(FeedEntry(signal=signal, decision=decision, degraded=degraded))
            except KyperianError as exc:
                logger.warning("cockpit feed not updated", extra={"reason": str(exc)})
        try:
            self._index.touch(decision.symbol, decision.decided_at)
        except KyperianError as exc:
            logger.warning("symbol index not updated", extra={"reason": str(exc)})
