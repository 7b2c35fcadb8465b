"""Delivers notices off the decision path: one bounded queue and one sender thread per channel.

``submit`` only filters and enqueues (microseconds, never blocks), so a slow or failing
channel can delay neither a decision nor another channel. Each sender retries a
``TemporaryError`` with growing backoff (``backoff * 2**n``, capped) up to ``attempts``
tries, then hands the notice to the dead letters; an ``OperationalError`` (bad token,
deleted webhook) is dead-lettered at once. A full queue (the channel has been down long
enough to fill ``queue_size``) dead-letters the overflow with a log line only, since
writing to DynamoDB there would put I/O back on the caller's thread. On shutdown the
senders get a few seconds to deliver what is queued; what is left is dead-lettered, not
dropped.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from kyperian.adapters.notify.channel import Channel
from kyperian.adapters.notify.dead_letters import DeadLetters
from kyperian.domain.decisions import Decision
from kyperian.domain.errors import KyperianError, TemporaryError
from kyperian.domain.models import Signal
from kyperian.domain.notices import Notice, decision_notice
from kyperian.engine.telemetry import logger

MAX_BACKOFF_SECONDS: Final = 60.0
_STOP: Final = object()


@dataclass
class SenderStats:
    """Counters an operator (and a test) can read; updated by the sender thread only."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    dropped: int = 0
    last_error: str | None = None


@dataclass
class _Sender:
    channel: Channel
    queue: queue.Queue[Notice | object]
    thread: threading.Thread | None = None
    stats: SenderStats = field(default_factory=SenderStats)


class NotificationDispatcher:
    """Fan notices out to channels in the background; also a ``DecisionObserver``."""

    def __init__(
        self,
        channels: Sequence[Channel],
        dead_letters: DeadLetters,
        *,
        queue_size: int = 1000,
        attempts: int = 4,
        backoff_seconds: float = 1.0,
        wait: Callable[[threading.Event, float], bool] | None = None,
    ) -> None:
        self._senders = {c.name: _Sender(c, queue.Queue(maxsize=queue_size)) for c in channels}
        self._dead = dead_letters
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._stop = threading.Event()
        self._wait = wait or (lambda event, seconds: event.wait(seconds))

    @property
    def channels(self) -> list[str]:
        return list(self._senders)

    def stats(self, channel: str) -> SenderStats:
        return self._senders[channel].stats

    def start(self) -> None:
        for name, sender in self._senders.items():
            if sender.thread is None:
                sender.thread = threading.Thread(
                    target=self._run, args=(sender,), name=f"notify-{name}", daemon=True
                )
                sender.thread.start()

    def submit(self, notice: Notice) -> None:
        """Queue ``notice`` for every channel that accepts it; never blocks, never raises."""
        for sender in self._senders.values():
            if not sender.channel.accepts(notice):
                continue
            try:
                sender.queue.put_nowait(notice)
            except queue.Full:
                sender.stats.dropped += 1
                logger.error(
                    "notification dead-lettered",
                    extra={
                        "channel": sender.channel.name,
                        "notice_id": notice.notice_id,
                        "kind": notice.kind.value,
                        "symbol": notice.symbol,
                        "title": notice.title,
                        "reason": "queue full: the channel has been failing",
                    },
                )

    def __call__(self, signal: Signal, decision: Decision, degraded: bool) -> None:
        """``DecisionObserver``: every decision becomes a notice; channels filter by kind."""
        self.submit(decision_notice(signal, decision))

    def stop(self, timeout: float = 5.0) -> None:
        """Give the senders up to ``timeout`` seconds to deliver what is queued, then stop
        them; what is still queued is dead-lettered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(
            s.thread is not None and s.thread.is_alive() and s.queue.unfinished_tasks
            for s in self._senders.values()
        ):
            time.sleep(0.02)
        self._stop.set()
        for sender in self._senders.values():
            # Wakes an idle sender; a full queue means a busy one, which sees the flag next.
            with contextlib.suppress(queue.Full):
                sender.queue.put_nowait(_STOP)
        for sender in self._senders.values():
            if sender.thread is not None:
                sender.thread.join(timeout)
            self._drain(sender)

    def _drain(self, sender: _Sender) -> None:
        while True:
            try:
                item = sender.queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Notice):
                self._give_up(sender, item, "engine stopped before it was sent", 0)

    def _run(self, sender: _Sender) -> None:
        while not self._stop.is_set():
            item = sender.queue.get()
            try:
                if not isinstance(item, Notice):
                    return
                self._deliver(sender, item)
            finally:
                sender.queue.task_done()

    def _deliver(self, sender: _Sender, notice: Notice) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                sender.channel.send(notice)
            except TemporaryError as exc:
                sender.stats.last_error = str(exc)
                if attempt == self._attempts:
                    self._give_up(sender, notice, str(exc), attempt)
                    return
                sender.stats.retried += 1
                delay = min(self._backoff * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
                if self._wait(self._stop, delay):
                    self._give_up(sender, notice, f"engine stopped while retrying: {exc}", attempt)
                    return
            except KyperianError as exc:
                sender.stats.last_error = str(exc)
                self._give_up(sender, notice, str(exc), attempt)
                return
            except Exception as exc:  # a channel bug must not kill its sender
                logger.exception("notification channel failed unexpectedly")
                self._give_up(sender, notice, f"{type(exc).__name__}: {exc}", attempt)
                return
            else:
                sender.stats.sent += 1
                return

    def _give_up(self, sender: _Sender, notice: Notice, reason: str, attempts: int) -> None:
        sender.stats.dead += 1
        self._dead.record(sender.channel.name, notice, reason, attempts)
