"""The contracts the ingestion path needs from the outside world.

Handlers and services depend on these abstract classes, never on boto3, so the same
code runs against DynamoDB/EventBridge on AWS, against moto locally, and in tests.
Implementations translate vendor failures into ``kyperian.domain.errors``.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

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


class SecretMatch(StrEnum):
    """Which version of a rotated secret a presented value matched."""

    CURRENT = "current"
    PREVIOUS = "previous"


def same_secret(provided: str, expected: str) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the secret.

    Any string is compared, lone surrogates included (``surrogatepass``): a crafted value
    is a mismatch, never an exception.
    """
    return hmac.compare_digest(
        provided.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class SecretSource(ABC):
    """Reads secret values, cached, so the hot path does not call AWS per request.

    ``match`` holds the rotation rule every credential check shares (the webhook key, the
    engine token); backends only fill ``get`` and ``previous``.
    """

    @abstractmethod
    def get(self, secret_id: str) -> str:
        """Return the current value of a secret (raises ``OperationalError`` if unreadable)."""

    @abstractmethod
    def previous(self, secret_id: str) -> PreviousSecret | None:
        """The value the current one replaced, and when; ``None`` if there is none."""

    def match(
        self, secret_id: str, provided: str | None, grace_seconds: int, now: datetime
    ) -> SecretMatch | None:
        """Which version ``provided`` is: the current one, or the previous one in its grace.

        Parameters
        ----------
        secret_id
            The secret to check against.
        provided
            What the caller presented; empty or ``None`` never matches.
        grace_seconds
            How long after a rotation the previous value is still accepted (0: never).
        now
            The time the grace period is measured at (aware).

        Returns
        -------
        SecretMatch | None
            ``None`` for a missing or wrong value, without saying which.

        Raises
        ------
        OperationalError
            The current value cannot be read: the caller must refuse (fail closed).
        """
        if not provided:
            return None
        if same_secret(provided, self.get(secret_id)):
            return SecretMatch.CURRENT
        if grace_seconds <= 0:
            return None
        previous = self.previous(secret_id)
        if previous is None:
            return None
        if (now - previous.replaced_at).total_seconds() >= grace_seconds:
            return None
        return SecretMatch.PREVIOUS if same_secret(provided, previous.value) else None


@dataclass(frozen=True)
class PreviousSecret:
    """A secret's previous value (``AWSPREVIOUS``) and when the current value replaced it."""

    value: str
    replaced_at: datetime
