"""The queue worker: delete only what succeeded, keep the rest, stop without losing anything."""

from __future__ import annotations

import threading
import time

from kyperian.domain.errors import TemporaryError
from kyperian.domain.models import Signal
from kyperian.engine.worker import QueueWorker, WorkerState
from tests.signal_factory import envelope, make_signal
from tests.unit.engine.conftest import Engine
from tests.unit.engine.fakes import MemoryQueue


def _queue_with(*signals: Signal) -> MemoryQueue:
    queue = MemoryQueue()
    for index, signal in enumerate(signals):
        queue.send(f"m-{index}", envelope(signal))
    return queue


def test_a_batch_deletes_only_the_messages_that_succeeded(engine: Engine) -> None:
    # GIVEN a good signal and a poison message
    queue = _queue_with(make_signal())
    queue.send("m-poison", "{not json")
    worker = QueueWorker(queue, engine.processor, batch_size=10, wait_seconds=0)

    # WHEN one batch is processed
    report = worker.run_once()

    # THEN only the decided message is deleted; the poison one stays for the DLQ
    assert (report.received, report.deleted, report.kept) == (2, 1, 1)
    assert queue.deleted == ["m-0"]
    assert list(queue.in_flight) == ["m-poison"]


def test_a_failed_delete_is_reported_and_the_redelivery_changes_nothing(engine: Engine) -> None:
    # GIVEN SQS refuses to delete a processed message
    queue = _queue_with(make_signal())
    queue.fail_deletes.add("m-0")
    worker = QueueWorker(queue, engine.processor, wait_seconds=0)

    # WHEN it is processed, then redelivered after the visibility timeout
    first = worker.run_once()
    queue.fail_deletes.clear()
    queue.redeliver_in_flight()
    second = worker.run_once()

    # THEN the second delivery is deleted as a duplicate and there is one decision
    assert first.delete_failures == 1
    assert second.deleted == 1
    assert len(engine.decisions.items) == 1


def test_messages_received_after_a_stop_are_released_untouched(engine: Engine) -> None:
    # GIVEN a stop requested while a long poll was in flight
    queue = _queue_with(make_signal(), make_signal())
    worker = QueueWorker(queue, engine.processor, wait_seconds=0)
    queue.on_receive.append(lambda: worker._stop.set())

    # WHEN the poll returns
    report = worker.run_once()

    # THEN the messages go back to the queue at once, unprocessed
    assert report.released == 2
    assert len(queue.visible) == 2
    assert not queue.in_flight
    assert engine.decisions.items == []


def test_the_thread_processes_until_stopped_and_stops_promptly(engine: Engine) -> None:
    # GIVEN a worker thread on a queue of three signals
    queue = _queue_with(make_signal(), make_signal(), make_signal())
    worker = QueueWorker(queue, engine.processor, batch_size=2, wait_seconds=0)

    # WHEN it runs until the queue is drained and is then stopped
    worker.start()
    deadline = time.monotonic() + 5
    while len(queue.deleted) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    stopped = worker.stop(timeout=5)

    # THEN every message was processed and deleted, and the thread ended quickly
    assert stopped
    assert worker.state is WorkerState.STOPPED
    assert time.monotonic() - started < 1
    assert len(queue.deleted) == 3
    assert not queue.in_flight


def test_queue_failures_back_off_and_a_stop_interrupts_the_pause(engine: Engine) -> None:
    # GIVEN a queue that fails every receive
    failing = MemoryQueue()
    calls = threading.Event()

    def broken(max_messages: int, wait_seconds: int, visibility_seconds: int) -> list[object]:
        calls.set()
        raise TemporaryError("sqs unreachable")

    failing.receive = broken  # type: ignore[method-assign, assignment]
    worker = QueueWorker(failing, engine.processor, wait_seconds=0, max_backoff_seconds=30)

    # WHEN the worker runs and is stopped during its back-off
    worker.start()
    assert calls.wait(2)
    time.sleep(0.05)
    started = time.monotonic()
    stopped = worker.stop(timeout=5)

    # THEN it recorded the error, stayed alive until asked, and stopped without waiting it out
    assert stopped
    assert time.monotonic() - started < 1
    assert worker.last_error is not None
    assert "sqs unreachable" in worker.last_error
