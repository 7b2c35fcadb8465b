"""The contracts the ingestion path needs from the outside world.

Handlers and services depend on these abstract classes, never on boto3, so the same
code runs against DynamoDB/EventBridge on AWS, against moto locally, and in tests.
Implementations translate vendor failures into ``kyperian.domain.errors``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kyperian.domain.models import Signal


class SignalStore(ABC):
    """Durable record of accepted signals (the Signals table)."""

    @abstractmethod
    def add(self, signal: Signal) -> None:
        """Store one signal once.

        Raises
        ------
        DuplicateSignal
            The same alert is already stored.
        TemporaryError, OperationalError
            The store could not be written.
        """

    @abstractmethod
    def add_all(self, signals: Sequence[Signal]) -> set[str]:
        """Store several signals all-or-nothing, skipping ones already stored.

        Returns
        -------
        set[str]
            The ids that were already stored (duplicates); every other signal is now stored.
        """

    @abstractmethod
    def remove(self, signals: Sequence[Signal]) -> None:
        """Undo a store whose publish failed: delete the rows of ``signals`` still pending.

        A row already marked published is kept (a concurrent identical delivery published it).
        """

    @abstractmethod
    def mark_published(self, signals: Sequence[Signal]) -> None:
        """Record that the events of ``signals`` are out; restores a row an undo removed."""

    @abstractmethod
    def unpublished(self, received_before: datetime, limit: int) -> list[Signal]:
        """Up to ``limit`` rows still pending that arrived before ``received_before``."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the store cannot be reached."""


class SignalPublisher(ABC):
    """Announces accepted signals to the engine (the event bus)."""

    @abstractmethod
    def publish(self, signals: Sequence[Signal]) -> None:
        """Publish every signal, retrying transient failures.

        Raises
        ------
        PublishFailed
            Some signals could not be published; the exception names them.
        """

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the bus cannot be reached."""


class SecretSource(ABC):
    """Reads secret values, cached, so the hot path does not call AWS per request."""

    @abstractmethod
    def get(self, secret_id: str) -> str:
        """Return the current value of a secret (raises ``OperationalError`` if unreadable)."""

    @abstractmethod
    def previous(self, secret_id: str) -> PreviousSecret | None:
        """The value the current one replaced, and when; ``None`` if there is none."""


@dataclass(frozen=True)
class PreviousSecret:
    """A secret's previous value (``AWSPREVIOUS``) and when the current value replaced it."""

    value: str
    replaced_at: datetime
