"""The contracts the engine needs from the outside world: cache, stores, queue.

The engine's processing code depends on these abstract classes only, so it runs against
Redis, DynamoDB and SQS on AWS, against redis-server and moto locally, and against small
in-memory doubles in unit tests. Implementations translate vendor failures into
``TemporaryError`` (retry, or decide in degraded mode) and ``OperationalError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kyperian.domain.decisions import Decision
from kyperian.domain.errors import KyperianError
from kyperian.domain.models import Signal


class DuplicateDecision(KyperianError):
    """A decision for this triggering signal is already stored; the first one stands."""

    def __init__(self, signal_id: str) -> None:
        super().__init__(f"a decision for signal {signal_id} is already stored")
        self.signal_id = signal_id


class SignalCache(ABC):
    """The latest signal per (symbol, timeframe, source) and the latest decision per symbol."""

    @abstractmethod
    def record_and_read(self, signal: Signal) -> list[Signal]:
        """Keep ``signal`` unless a newer one holds its slot, then return the symbol's signals.

        One round trip: the write and the read of every timeframe go in one pipeline.
        """

    @abstractmethod
    def record_all(self, signals: Sequence[Signal]) -> None:
        """Keep each signal unless a newer one holds its slot (used to refill after an outage)."""

    @abstractmethod
    def latest_signals(self, symbol: str) -> list[Signal]:
        """The cached signals of a symbol, at most one per (timeframe, source)."""

    @abstractmethod
    def put_decision(self, decision: Decision) -> None:
        """Cache a decision as the symbol's latest unless a later one is already cached."""

    @abstractmethod
    def latest_decision(self, symbol: str) -> Decision | None:
        """The cached latest decision, or None once it expired."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the cache cannot be reached."""


class Claim(StrEnum):
    """What the processed-signal register says about a signal id."""

    NEW = "NEW"
    """Not processed; this worker now holds the processing lease."""
    DONE = "DONE"
    """Already processed: acknowledge the message and change nothing."""
    BUSY = "BUSY"
    """Another worker holds the lease: leave the message, it will come back."""


class ProcessedSignals(ABC):
    """Fast register of processed signal ids, so a redelivered message changes nothing."""

    @abstractmethod
    def claim(self, signal_id: str, lease_seconds: int) -> Claim:
        """Take the processing lease of a signal unless it is done or leased elsewhere."""

    @abstractmethod
    def finish(self, signal_id: str) -> None:
        """Remember the signal as processed and drop the lease."""

    @abstractmethod
    def release(self, signal_id: str) -> None:
        """Drop the lease without marking the signal done (processing failed; retry later)."""


class DecisionStore(ABC):
    """Durable record of decisions (the Decisions table), newest first per symbol."""

    @abstractmethod
    def record(self, decision: Decision) -> None:
        """Store a decision once per triggering signal.

        Raises
        ------
        DuplicateDecision
            A decision for the same triggering signal is already stored.
        TemporaryError, OperationalError
            The store could not be written.
        """

    @abstractmethod
    def latest(self, symbol: str) -> Decision | None:
        """The most recent stored decision of a symbol."""

    @abstractmethod
    def history(
        self, symbol: str, limit: int = 50, before: datetime | None = None
    ) -> list[Decision]:
        """Up to ``limit`` decisions of a symbol made before ``before``, newest first."""

    @abstractmethod
    def for_trigger(self, signal: Signal) -> Decision | None:
        """The decision made for a triggering signal, if one is stored."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the store cannot be reached."""


class SignalHistory(ABC):
    """Read access to stored signals: what the engine decides from when the cache is down."""

    @abstractmethod
    def recent(self, symbol: str, now: datetime) -> list[Signal]:
        """Every stored signal of a symbol young enough to still count at ``now``."""


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received message; ``receipt`` is what deleting or releasing it needs."""

    message_id: str
    receipt: str
    body: str
    receive_count: int


class WorkQueue(ABC):
    """The queue of validated signals the engine consumes (SQS, fed by EventBridge)."""

    @abstractmethod
    def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueueMessage]:
        """Long-poll for up to ``max_messages``; they stay hidden for ``visibility_seconds``."""

    @abstractmethod
    def delete(self, messages: Sequence[QueueMessage]) -> list[str]:
        """Delete processed messages; return the ids that could not be deleted."""

    @abstractmethod
    def release(self, messages: Sequence[QueueMessage]) -> None:
        """Make received messages visible again at once (shutting down without processing)."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the queue cannot be reached."""
