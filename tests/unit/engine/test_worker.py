"""The queue worker: delete only what succeeded, keep the rest, stop without losing anything."""

from __future__ import annotations

import json
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.engine_ports import QueueMessage
from kyperian.domain.errors import TemporaryError
from kyperian.domain.models import Signal
from kyperian.engine.processor import Result
from kyperian.engine.services import worker_lanes
from kyperian.engine.worker import QueueWorker, WorkerState, ordering_key, symbol_lanes
from kyperian.settings import Settings
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


class _Watched:
    """Wraps the processor's ``handle``: records per symbol the order and any overlap."""

    def __init__(self, engine: Engine, pause: float = 0.002) -> None:
        self._handle = engine.processor.handle
        self._pause = pause
        self._lock = threading.Lock()
        self.order: dict[str, list[str]] = {}
        self.active: dict[str, int] = {}
        self.overlapped = False

    def __call__(self, message: QueueMessage) -> Result:
        symbol = json.loads(message.body)["detail"]["symbol"]
        with self._lock:
            self.order.setdefault(symbol, []).append(message.message_id)
            self.active[symbol] = self.active.get(symbol, 0) + 1
            self.overlapped |= self.active[symbol] > 1
        time.sleep(self._pause)  # widen the window in which a second lane could overlap
        try:
            return self._handle(message)
        finally:
            with self._lock:
                self.active[symbol] -= 1


def test_a_symbols_messages_are_handled_in_delivery_order_never_two_at_once(
    engine: Engine,
) -> None:
    # GIVEN one batch interleaving three symbols' signals, and a worker with four lanes
    queue = MemoryQueue()
    sent: dict[str, list[str]] = {}
    for index in range(10):
        symbol = ("AAPL", "MSFT", "TSLA")[index % 3]
        timeframe = ("15m", "30m", "1h", "4h", "1D", "1W")[index % 6]
        queue.send(f"m-{index}", envelope(make_signal(symbol=symbol, timeframe=timeframe)))
        sent.setdefault(symbol, []).append(f"m-{index}")
    watched = _Watched(engine)
    engine.processor.handle = watched  # type: ignore[method-assign]
    worker = QueueWorker(queue, engine.processor, batch_size=10, wait_seconds=0, concurrency=4)

    # WHEN the batch is processed
    report = worker.run_once()

    # THEN each symbol saw its messages in delivery order, one at a time, and all were deleted
    assert watched.order == sent
    assert not watched.overlapped
    assert report.deleted == 10
    assert len(engine.decisions.items) == 10


def test_different_symbols_are_handled_side_by_side(engine: Engine) -> None:
    # GIVEN AAPL's handling waits until MSFT's has started, on a worker with two lanes
    queue = MemoryQueue()
    queue.send("m-aapl", envelope(make_signal(symbol="AAPL")))
    queue.send("m-msft", envelope(make_signal(symbol="MSFT")))
    msft_started = threading.Event()
    saw_msft: list[bool] = []
    handle = engine.processor.handle

    def gated(message: QueueMessage) -> Result:
        if message.message_id == "m-aapl":
            saw_msft.append(msft_started.wait(timeout=5))
        else:
            msft_started.set()
        return handle(message)

    engine.processor.handle = gated  # type: ignore[method-assign]
    worker = QueueWorker(queue, engine.processor, wait_seconds=0, concurrency=2)

    # WHEN the batch is processed
    report = worker.run_once()

    # THEN MSFT ran while AAPL was still in hand (one lane would have waited it out)
    assert saw_msft == [True]
    assert report.deleted == 2


@given(st.lists(st.sampled_from(["AAPL", "MSFT", "TSLA", None]), max_size=10))
def test_lanes_partition_a_batch_by_symbol_keeping_delivery_order(
    symbols: list[str | None],
) -> None:
    # GIVEN a batch of signals on a few symbols, with unreadable messages (None) among them
    messages = [
        QueueMessage(f"m-{i}", f"r-{i}", envelope(make_signal(symbol=s)) if s else "{not json", 1)
        for i, s in enumerate(symbols)
    ]

    # WHEN it is split into lanes
    lanes = symbol_lanes(messages)

    # THEN every message is in exactly one lane, in delivery order, one symbol per lane,
    # and each unreadable message has a lane of its own
    flat = [m.message_id for lane in lanes for m in lane]
    assert sorted(flat) == sorted(m.message_id for m in messages)
    for lane in lanes:
        keys = {ordering_key(m) for m in lane}
        assert len(keys) == 1
        ids = [int(m.message_id[2:]) for m in lane]
        assert ids == sorted(ids)
        if keys.pop().startswith("message:"):
            assert len(lane) == 1
    assert len(lanes) == len({s for s in symbols if s}) + symbols.count(None)


def test_auto_trading_keeps_one_lane_so_the_book_limit_stays_exact() -> None:
    # GIVEN the same worker settings with and without auto trading
    quiet = Settings(worker_concurrency=8)
    trading = Settings(worker_concurrency=8, auto_trading=True)

    # THEN lanes run side by side only when no order can come out of a decision
    assert worker_lanes(quiet) == 8
    assert worker_lanes(trading) == 1
