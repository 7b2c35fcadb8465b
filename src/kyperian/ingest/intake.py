"""Accepting signals: store, publish, record; an alert is accepted or refused whole.

Order matters. Each signal is stored first, as a *pending* row, so no event ever names a
signal the table lacks. Then the alert is published, then its rows are marked published.

- Nothing published (the publisher failed, with any error): the rows this request stored are
  deleted again and the error goes up (503, retry). The delete spares a row that has been
  marked published meanwhile, because an identical concurrent delivery published its event.
- Part published (``PublishFailed`` naming only some signals): an event cannot be taken back,
  so the alert is accepted whole: the published ones are marked, the rest stay pending and
  the sweeper publishes them (``kyperian.ingest.sweeper``).
- Outcome unknown (``PublishFailed.maybe_published``: an attempt timed out after it was
  sent): the bus may hold the events, so nothing is undone; the alert is accepted whole and
  its rows stay pending for the sweeper (a second event is ignored by the engine).
- The undo itself fails: the rows stay pending; that is logged with the signal ids, counted
  (``on_undo_failed``, the ``UndoFailed`` metric and alarm) and repaired by the sweeper.
- Marking fails after a publish: the rows stay pending and the sweeper publishes them again,
  which the engine, idempotent by signal id, ignores.

Duplicates (the same alert delivered again) are published again on purpose: the engine is
idempotent, and a delivery whose first attempt was left pending is then completed at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


_PARTLY_PUBLISHED = "alert partly published: accepted whole, the sweeper publishes the rest"
_OUTCOME_UNKNOWN = (
    "publish outcome unknown (timed out after sending): accepted whole, nothing undone, "
    "the sweeper publishes what is still pending"
)


def _ignore(signal_ids: list[str]) -> None:
    return None


class SignalIntake:
    """Stores, publishes and records signals; undoes the store when nothing was published."""

    def __init__(
        self,
        store: SignalStore,
        publisher: SignalPublisher,
        on_undo_failed: Callable[[list[str]], None] = _ignore,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._on_undo_failed = on_undo_failed

    def accept(self, signals: Sequence[Signal]) -> list[Accepted]:
        """Store and publish ``signals`` as one unit.

        Raises
        ------
        TemporaryError, OperationalError, or what the publisher raised
            Nothing was published; what this call stored has been undone where possible.
        """
        duplicates = self._store_all(signals)
        stored_now = [s for s in signals if s.signal_id not in duplicates]
        try:
            self._publisher.publish(signals)
        except PublishFailed as exc:
            unpublished = set(exc.signal_ids)
            published = [s for s in signals if s.signal_id not in unpublished]
            if not published and not exc.maybe_published:
                self._undo(stored_now)
                raise
            logger.warning(
                _OUTCOME_UNKNOWN if exc.maybe_published else _PARTLY_PUBLISHED,
                extra={
                    "signal_ids": sorted(unpublished),
                    "error": str(exc),
                    "outcome_unknown": exc.maybe_published,
                },
            )
            if published:
                self._mark(published)
        except Exception:
            self._undo(stored_now)
            raise
        else:
            self._mark(signals)
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
        if not signals:
            return
        try:
            self._store.remove(signals)
        except Exception as exc:
            ids = [s.signal_id for s in signals]
            logger.error(
                "could not undo stored signals after a failed publish; the sweeper will "
                "publish them",
                extra={"signal_ids": ids, "error": str(exc)},
            )
            self._on_undo_failed(ids)

    def _mark(self, signals: Sequence[Signal]) -> None:
        try:
            self._store.mark_published(signals)
        except KyperianError as exc:
            logger.warning(
                "published but not recorded; the sweeper will publish them again",
                extra={"signal_ids": [s.signal_id for s in signals], "error": str(exc)},
            )
