"""In-memory doubles of the ingest ports (our own interfaces, not AWS APIs).

Used where a test or a benchmark measures the handler or the intake itself: the fuzz, the
intake's ordering and undo, ``make bench``. AWS behaviour is tested against moto elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from kyperian.domain.errors import DuplicateSignal
from kyperian.domain.models import Signal
from kyperian.domain.ports import PreviousSecret, SecretSource, SignalPublisher, SignalStore


class MemoryStore(SignalStore):
    """Rows by signal id, each pending or published, with a log of the calls made."""

    def __init__(self) -> None:
        self.rows: dict[str, Signal] = {}
        self.pending: set[str] = set()
        self.calls: list[str] = []

    def add(self, signal: Signal) -> None:
        self.calls.append("add")
        if signal.signal_id in self.rows:
            raise DuplicateSignal(signal.signal_id)
        self.rows[signal.signal_id] = signal
        self.pending.add(signal.signal_id)

    def add_all(self, signals: Sequence[Signal]) -> set[str]:
        self.calls.append("add_all")
        duplicates = {s.signal_id for s in signals} & set(self.rows)
        for signal in signals:
            if signal.signal_id not in duplicates:
                self.rows[signal.signal_id] = signal
                self.pending.add(signal.signal_id)
        return duplicates

    def remove(self, signals: Sequence[Signal]) -> None:
        self.calls.append("remove")
        for signal in signals:
            if signal.signal_id in self.pending:
                del self.rows[signal.signal_id]
                self.pending.discard(signal.signal_id)

    def mark_published(self, signals: Sequence[Signal]) -> None:
        self.calls.append("mark_published")
        for signal in signals:
            self.rows[signal.signal_id] = signal
            self.pending.discard(signal.signal_id)

    def unpublished(self, received_before: datetime, limit: int) -> list[Signal]:
        due = [self.rows[i] for i in sorted(self.pending)]
        return [s for s in due if s.received_at < received_before][:limit]

    def check(self) -> None:
        return None


class MemoryPublisher(SignalPublisher):
    """Serializes each event as the real publisher does and keeps the ids it published."""

    def __init__(self) -> None:
        self.published: list[str] = []

    def publish(self, signals: Sequence[Signal]) -> None:
        for signal in signals:
            json.dumps(signal.to_event_detail())
            self.published.append(signal.signal_id)

    def check(self) -> None:
        return None


class FixedSecret(SecretSource):
    """One current value; optionally a previous one replaced at a given time."""

    def __init__(self, value: str, previous: PreviousSecret | None = None) -> None:
        self.value = value
        self.previous_value = previous

    def get(self, secret_id: str) -> str:
        return self.value

    def previous(self, secret_id: str) -> PreviousSecret | None:
        return self.previous_value
