"""Accepting signals: store each once, then publish, and never leave one half-accepted.

Order matters. A signal is stored before it is published, so no event ever names a
signal the table lacks. If publishing fails after retries, the signals this request
stored are deleted again and the caller is told (503) to retry; a retry then starts
clean. Duplicates (the same alert delivered again) are published again on purpose:
if an earlier delivery's publish failed and its undo failed too, the retry still
reaches the engine, which is idempotent by signal id, so a repeat costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_lambda_powertools import Logger

from kyperian.domain.errors import DuplicateSignal, KyperianError, PublishFailed
from kyperian.domain.models import Signal
from kyperian.domain.ports import SignalPublisher, SignalStore

logger = Logger(child=True)


@dataclass(frozen=True)
class Accepted:
    """One accepted signal and whether an earlier delivery had already stored it."""

    signal: Signal
    duplicate: bool


class SignalIntake:
    """Stores then publishes signals, undoing the store when the publish fails."""

    def __init__(self, store: SignalStore, publisher: SignalPublisher) -> None:
        self._store = store
        self._publisher = publisher

    def accept(self, signals: Sequence[Signal]) -> list[Accepted]:
        """Store and publish ``signals`` as one unit.

        Raises
        ------
        TemporaryError, OperationalError
            Nothing new was accepted (what this call stored has been undone where possible).
        """
        duplicates = self._store_all(signals)
        stored_now = [s for s in signals if s.signal_id not in duplicates]
        try:
            self._publisher.publish(signals)
        except PublishFailed as exc:
            self._undo([s for s in stored_now if s.signal_id in set(exc.signal_ids)])
            raise
        except KyperianError:
            self._undo(stored_now)
            raise
        return [Accepted(s, s.signal_id in duplicates) for s in signals]

    def _store_all(self, signals: Sequence[Signal]) -> set[str]:
        if len(signals) != 1:
            return self._store.add_all(signals)
        try:
            self._store.add(signals[0])
        except DuplicateSignal as exc:
            return {exc.signal_id}
        return set()

    def _undo(self, signals: Sequence[Signal]) -> None:
        try:
            self._store.remove(signals)
        except KyperianError as exc:
            # The rows stay; a retried delivery is a duplicate and is published again.
            logger.error(
                "could not undo stored signals after a failed publish",
                extra={"signal_ids": [s.signal_id for s in signals], "error": str(exc)},
            )
