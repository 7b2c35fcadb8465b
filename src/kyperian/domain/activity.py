"""What the engine remembers of its recent work for people: the feed, the symbols, observers.

The cockpit (``/ui``) needs every symbol the engine has decided on and the latest
signals and decisions across symbols, newest first. The Decisions table is keyed per
symbol, so answering "what happened lately, anywhere?" from it would take a scan. These
ports name the two small indexes that answer it instead (a capped feed and a symbol
index); adapters keep them in Redis and DynamoDB. ``DecisionObserver`` is how the
processor tells the feed and the notifier about a decision without knowing either.
Nothing here does I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from kyperian.domain.decisions import Decision
from kyperian.domain.models import Signal


class FeedEntry(BaseModel):
    """One processed signal and the decision it triggered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal: Signal
    decision: Decision
    degraded: bool = False
    """True when the decision was made from the table because Redis was down."""

    @property
    def latency_ms(self) -> float:
        """Webhook arrival to decision: what the specification's latency budget measures."""
        return (self.decision.decided_at - self.signal.received_at).total_seconds() * 1000


class ActivityFeed(ABC):
    """The latest feed entries across symbols, capped, newest first."""

    @abstractmethod
    def append(self, entry: FeedEntry) -> None:
        """Add an entry at the head and drop the oldest beyond the cap."""

    @abstractmethod
    def recent(self, limit: int, symbol: str | None = None) -> list[FeedEntry]:
        """Up to ``limit`` entries, newest first, of one symbol or of all."""


class SymbolIndex(ABC):
    """Every symbol the engine has decided on recently (the board's rows)."""

    @abstractmethod
    def touch(self, symbol: str, moment: datetime) -> None:
        """Note that ``symbol`` had a decision at ``moment``."""

    @abstractmethod
    def symbols(self) -> list[str]:
        """The indexed symbols in alphabetical order (a board whose rows stay put)."""


class DecisionObserver(Protocol):
    """Called by the processor after a decision is stored; must return quickly, never raise."""

    def __call__(self, signal: Signal, decision: Decision, degraded: bool) -> None: ...


def notify_all(
    observers: Sequence[DecisionObserver], signal: Signal, decision: Decision, degraded: bool
) -> list[Exception]:
    """Call every observer; one that raises does not stop the others. Returns the failures."""
    failures: list[Exception] = []
    for observer in observers:
        try:
            observer(signal, decision, degraded)
        except Exception as exc:  # an observer's bug must never undo a decision
            failures.append(exc)
    return failures
