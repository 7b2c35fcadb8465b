"""The SQS worker: long-poll, process a batch, delete only what succeeded, stop cleanly.

Runs on its own thread inside the service. A message is deleted only when its signal was
decided or found already decided; everything else (a dependency failure, a lease held by
another task, an unreadable body) stays in the queue and comes back after the visibility
timeout, until the queue's redrive policy moves it to the dead-letter queue after
``maxReceiveCount`` receives. On shutdown (SIGTERM -> uvicorn -> lifespan) the worker
finishes the batch in hand, releases messages it received but did not start, and exits
well inside ECS's 30-second stop timeout: nothing is lost, at worst it is redelivered.

A batch is processed by up to ``concurrency`` threads, one lane per symbol: a symbol's
messages run one after another in the order SQS delivered them (fusion reads the symbol's
latest signals, so two of them must not race), different symbols run side by side while
each waits on Redis or DynamoDB. What succeeded is then deleted in one batch call.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from kyperian.domain.engine_ports import QueueMessage, WorkQueue
from kyperian.domain.errors import KyperianError
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.telemetry import logger


class WorkerState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What one receive did: how many came in, were deleted, stayed, could not be deleted."""

    received: int = 0
    deleted: int = 0
    kept: int = 0
    released: int = 0
    delete_failures: int = 0


class QueueWorker:
    """Consumes a ``WorkQueue`` with a ``SignalProcessor`` on a background thread."""

    def __init__(
        self,
        queue: WorkQueue,
        processor: SignalProcessor,
        *,
        batch_size: int = 10,
        wait_seconds: int = 10,
        visibility_seconds: int = 60,
        max_backoff_seconds: float = 30.0,
        concurrency: int = 1,
    ) -> None:
        self.queue = queue
        self.processor = processor
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.visibility_seconds = visibility_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.concurrency = max(1, concurrency)
        self._pool = (
            ThreadPoolExecutor(self.concurrency, thread_name_prefix="sqs-lane")
            if self.concurrency > 1
            else None
        )
        self.state = WorkerState.IDLE
        self.last_error: str | None = None
        self.last_poll_monotonic: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """True while the polling thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start polling on a daemon thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sqs-worker", daemon=True)
        self.state = WorkerState.RUNNING
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the worker to stop and wait up to ``timeout`` seconds; True if it stopped."""
        self._stop.set()
        if self._thread is None:
            self.state = WorkerState.STOPPED
            return True
        if self.alive:
            self.state = WorkerState.STOPPING
        self._thread.join(timeout)
        stopped = not self.alive
        if stopped and self._pool is not None:
            self._pool.shutdown(wait=False)
        return stopped

    def run_once(self) -> BatchReport:
        """Receive one batch and process it; released untouched if a stop came meanwhile."""
        messages = self.queue.receive(self.batch_size, self.wait_seconds, self.visibility_seconds)
        self.last_poll_monotonic = time.monotonic()
        if not messages:
            return BatchReport()
        if self._stop.is_set():
            self.queue.release(messages)
            return BatchReport(received=len(messages), released=len(messages))
        done = self._process(messages)
        failures = self._delete(done)
        return BatchReport(
            received=len(messages),
            deleted=len(done) - len(failures),
            kept=len(messages) - len(done),
            delete_failures=len(failures),
        )

    def _process(self, messages: list[QueueMessage]) -> list[QueueMessage]:
        """Handle a batch, one lane per symbol; the messages that may be deleted."""
        lanes = symbol_lanes(messages)
        if self._pool is None or len(lanes) == 1:
            return [m for lane in lanes for m in self._lane(lane)]
        futures = [self._pool.submit(self._lane, lane) for lane in lanes]
        return [m for future in futures for m in future.result()]

    def _lane(self, lane: Sequence[QueueMessage]) -> list[QueueMessage]:
        """One symbol's messages, in order."""
        return [m for m in lane if self.processor.handle(m).outcome.delete]

    def _delete(self, done: list[QueueMessage]) -> list[str]:
        """Delete processed messages; one that fails comes back and is found already decided."""
        if not done:
            return []
        failures = self.queue.delete(done)
        if failures:
            logger.warning(
                "processed messages not deleted; they will be redelivered",
                extra={"message_ids": failures},
            )
        return failures

    def _run(self) -> None:
        backoff = 0.0
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                    backoff = 0.0
                    self.last_error = None
                except KyperianError as exc:
                    backoff = self._pause(exc, backoff)
                except Exception as exc:  # the loop must outlive any single bug; it is logged
                    logger.exception("worker loop failed")
                    backoff = self._pause(exc, backoff)
        finally:
            self.state = WorkerState.STOPPED if self._stop.is_set() else WorkerState.FAILED
            logger.info("worker stopped", extra={"state": self.state.value})

    def _pause(self, exc: Exception, backoff: float) -> float:
        """Wait (interruptibly) before polling again, doubling up to the maximum."""
        backoff = min(self.max_backoff_seconds, backoff * 2 if backoff else 1.0)
        self.last_error = f"{type(exc).__name__}: {exc}"
        logger.warning(
            "queue unavailable; backing off", extra={"reason": self.last_error, "seconds": backoff}
        )
        self._stop.wait(backoff)
        return backoff


def ordering_key(message: QueueMessage) -> str:
    """The symbol a message is about; an unreadable one gets a lane of its own."""
    try:
        detail = json.loads(message.body).get("detail")
        symbol = detail.get("symbol") if isinstance(detail, dict) else None
    except (ValueError, AttributeError):
        symbol = None
    return f"symbol:{symbol}" if isinstance(symbol, str) else f"message:{message.message_id}"


def symbol_lanes(messages: Sequence[QueueMessage]) -> list[list[QueueMessage]]:
    """The batch split by symbol, each lane in delivery order, lanes in first-seen order."""
    lanes: dict[str, list[QueueMessage]] = {}
    for message in messages:
        lanes.setdefault(ordering_key(message), []).append(message)
    return list(lanes.values())
