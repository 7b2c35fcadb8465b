"""The intake's ordering, undo and roll-forward, and the sweeper, on in-memory ports."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from kyperian.domain.errors import OperationalError, PublishFailed, TemporaryError
from kyperian.domain.models import Signal
from kyperian.ingest.intake import SignalIntake
from kyperian.ingest.parse import ArrivalWindow, parse_mtf_alert
from kyperian.ingest.sweeper import Sweeper
from tests.ingest_doubles import MemoryPublisher, MemoryStore

NOW = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)


def signals(count: int = 3, at: datetime = NOW) -> list[Signal]:
    timeframes = ["15", "60", "240", "D", "W", "30"]
    payload = {
        "symbol": "AAPL",
        "source": "luxalgo",
        "signals": [{"timeframe": tf, "action": "buy"} for tf in timeframes[:count]],
    }
    return parse_mtf_alert(payload, ArrivalWindow.at(at, 7, 300))


class RaisingPublisher(MemoryPublisher):
    """Fails with ``error``; records which rows existed when it was called."""

    def __init__(self, store: MemoryStore, error: Exception | None = None) -> None:
        super().__init__()
        self.store = store
        self.error = error
        self.rows_seen: set[str] = set()

    def publish(self, signals: Sequence[Signal]) -> None:
        self.rows_seen = set(self.store.rows)
        if self.error is not None:
            raise self.error
        super().publish(signals)


class PartialPublisher(MemoryPublisher):
    """Publishes the first ``count`` signals, then reports the rest as failed."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def publish(self, signals: Sequence[Signal]) -> None:
        super().publish(signals[: self.count])
        raise PublishFailed([s.signal_id for s in signals[self.count :]], "ThrottlingException")


class FailingRemoveStore(MemoryStore):
    def remove(self, signals: Sequence[Signal]) -> None:
        raise TemporaryError("undoing a stored signal failed: ProvisionedThroughputExceeded")


class FailingMarkStore(MemoryStore):
    def mark_published(self, signals: Sequence[Signal]) -> None:
        raise TemporaryError("recording published signals failed")


def test_rows_are_stored_before_publishing_then_marked() -> None:
    # GIVEN an alert of three timeframes
    store = MemoryStore()
    publisher = RaisingPublisher(store)
    batch = signals()
    # WHEN accepted
    accepted = SignalIntake(store, publisher).accept(batch)
    # THEN every row existed when publishing began, and none is left pending
    assert publisher.rows_seen == {s.signal_id for s in batch}
    assert store.calls == ["add_all", "mark_published"]
    assert store.pending == set()
    assert [a.duplicate for a in accepted] == [False, False, False]


@pytest.mark.parametrize(
    "error",
    [
        TemporaryError("publishing failed: InternalFailure"),
        OperationalError("publishing failed: AccessDeniedException"),
        RuntimeError("a bug in the publisher"),
        PublishFailed(["<all>"], "ThrottlingException"),
    ],
)
def test_nothing_published_undoes_what_this_request_stored(error: Exception) -> None:
    # GIVEN one signal already stored by an earlier delivery, two new ones
    store = MemoryStore()
    batch = signals()
    store.add(batch[0])
    store.mark_published([batch[0]])
    if isinstance(error, PublishFailed):
        error = PublishFailed([s.signal_id for s in batch], "ThrottlingException")
    # WHEN publishing fails with any error, PublishFailed or not
    with pytest.raises(type(error)):
        SignalIntake(store, RaisingPublisher(store, error)).accept(batch)
    # THEN the two rows this request stored are gone, the earlier delivery's row stays
    assert set(store.rows) == {batch[0].signal_id}
    assert store.calls[-1] == "remove"


def test_a_partly_published_alert_is_accepted_whole() -> None:
    # GIVEN a publisher that gets one of three events out, then fails the rest
    store = MemoryStore()
    batch = signals()
    # WHEN the alert is accepted
    accepted = SignalIntake(store, PartialPublisher(1)).accept(batch)
    # THEN all three rows stay: the published one marked, the others pending for the sweeper
    assert [a.signal for a in accepted] == batch
    assert set(store.rows) == {s.signal_id for s in batch}
    assert store.pending == {batch[1].signal_id, batch[2].signal_id}


def test_a_publish_whose_outcome_is_unknown_is_never_undone() -> None:
    # GIVEN a publisher whose every attempt timed out after sending (the bus may hold them)
    store = MemoryStore()
    batch = signals()
    error = PublishFailed([s.signal_id for s in batch], "ReadTimeoutError", maybe_published=True)
    # WHEN the alert is accepted
    accepted = SignalIntake(store, RaisingPublisher(store, error)).accept(batch)
    # THEN it is accepted whole and nothing is undone: every row stays pending for the sweeper
    assert [a.signal for a in accepted] == batch
    assert set(store.rows) == {s.signal_id for s in batch}
    assert store.pending == {s.signal_id for s in batch}
    assert "remove" not in store.calls


def test_a_failed_undo_is_counted_with_the_signal_ids_and_the_error_raised() -> None:
    # GIVEN a table that fails the undo
    store = FailingRemoveStore()
    batch = signals(2)
    counted: list[list[str]] = []
    intake = SignalIntake(
        store, RaisingPublisher(store, TemporaryError("bus down")), on_undo_failed=counted.append
    )
    # WHEN publishing fails
    with pytest.raises(TemporaryError, match="bus down"):
        intake.accept(batch)
    # THEN the publish error reaches the caller, the rows stay pending, the ids are counted
    assert counted == [[s.signal_id for s in batch]]
    assert store.pending == {s.signal_id for s in batch}


def test_a_failed_mark_still_accepts_and_leaves_rows_for_the_sweeper() -> None:
    store = FailingMarkStore()
    batch = signals(1)
    accepted = SignalIntake(store, MemoryPublisher()).accept(batch)
    assert [a.signal for a in accepted] == batch
    assert store.pending == {batch[0].signal_id}


def test_concurrent_identical_alerts_never_leave_an_event_without_its_row() -> None:
    # GIVEN delivery A stored the rows, and an identical delivery B arrives while A publishes
    store = MemoryStore()
    batch = signals(2)
    b_publisher = MemoryPublisher()

    class ThenFail(MemoryPublisher):
        def publish(self, signals: Sequence[Signal]) -> None:
            # B runs whole in between: it sees duplicates, publishes, marks
            SignalIntake(store, b_publisher).accept(batch)
            raise TemporaryError("A's publish timed out")

    # WHEN A's publish then fails and A undoes
    with pytest.raises(TemporaryError):
        SignalIntake(store, ThenFail()).accept(batch)
    # THEN B's events all have their rows: A's undo spared rows already published
    assert b_publisher.published == [s.signal_id for s in batch]
    assert set(store.rows) == {s.signal_id for s in batch}
    assert store.pending == set()


def test_a_row_removed_by_an_undo_is_restored_when_its_event_goes_out() -> None:
    # GIVEN B is publishing a duplicate when A's undo removes the still-pending rows
    store = MemoryStore()
    batch = signals(2)
    store.add_all(batch)  # A's rows, pending

    class UndoDuringPublish(MemoryPublisher):
        def publish(self, signals: Sequence[Signal]) -> None:
            store.remove(batch)  # A's undo lands now
            super().publish(signals)

    # WHEN B's publish succeeds
    SignalIntake(store, UndoDuringPublish()).accept(batch)
    # THEN B's mark wrote the rows back, published
    assert set(store.rows) == {s.signal_id for s in batch}
    assert store.pending == set()


# --- the sweeper ---------------------------------------------------------------------------


def test_the_sweeper_publishes_and_marks_only_rows_pending_long_enough() -> None:
    # GIVEN a row pending for 10 minutes and one pending for 10 seconds
    store = MemoryStore()
    (old,) = signals(1, at=NOW - timedelta(minutes=10))
    fresh = signals(2, at=NOW - timedelta(seconds=10))[1]
    store.add(old)
    store.add(fresh)
    publisher = MemoryPublisher()
    # WHEN the sweeper runs with a two-minute delay
    result = Sweeper(store, publisher).sweep(NOW, timedelta(minutes=2), limit=100)
    # THEN only the old one is published and marked; the live request's row is left alone
    assert (result.found, result.published) == (1, 1)
    assert publisher.published == [old.signal_id]
    assert store.pending == {fresh.signal_id}


def test_the_sweeper_marks_only_what_it_got_out() -> None:
    store = MemoryStore()
    batch = signals(3, at=NOW - timedelta(minutes=10))
    store.add_all(batch)
    result = Sweeper(store, PartialPublisher(1)).sweep(NOW, timedelta(minutes=2), limit=100)
    assert (result.found, result.published) == (3, 1)
    assert len(store.pending) == 2
    assert set(store.rows) == {s.signal_id for s in batch}


# --- what on-call reads ---------------------------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.endswith("intake") and r.levelno == level]


def test_a_failed_undo_is_logged_as_an_error_with_ids_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a failed publish whose undo fails too
    store = FailingRemoveStore()
    batch = signals(2)
    with caplog.at_level(logging.INFO), pytest.raises(TemporaryError):
        SignalIntake(store, RaisingPublisher(store, TemporaryError("bus down"))).accept(batch)
    # THEN one ERROR names every signal left pending and why the undo failed
    (record,) = _records(caplog, logging.ERROR)
    assert record.getMessage().startswith("could not undo stored signals")
    assert record.signal_ids == [s.signal_id for s in batch]  # type: ignore[attr-defined]
    assert "ProvisionedThroughputExceeded" in record.error  # type: ignore[attr-defined]


def test_partial_publish_and_failed_mark_are_logged_with_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN an alert partly published, and one published whose mark fails
    partial = signals(3)
    (unmarked,) = signals(1, at=NOW - timedelta(hours=1))
    with caplog.at_level(logging.INFO):
        SignalIntake(MemoryStore(), PartialPublisher(1)).accept(partial)
        SignalIntake(FailingMarkStore(), MemoryPublisher()).accept([unmarked])
    # THEN each is a WARNING naming the signals the sweeper will handle, and the cause
    first, second = _records(caplog, logging.WARNING)
    assert first.getMessage().startswith("alert partly published")
    assert first.signal_ids == sorted(s.signal_id for s in partial[1:])  # type: ignore[attr-defined]
    assert "ThrottlingException" in first.error  # type: ignore[attr-defined]
    assert second.getMessage().startswith("published but not recorded")
    assert second.signal_ids == [unmarked.signal_id]  # type: ignore[attr-defined]
    assert "recording published signals failed" in second.error  # type: ignore[attr-defined]
