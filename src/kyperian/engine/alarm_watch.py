"""Forwards the stack's CloudWatch alarms to the trader's chat channels.

Every ``interval`` seconds the watch reads the ``kyperian-<env>-*`` metric alarms and, for
each state change, claims it in the Decisions table (a conditional write keyed by the
alarm and the time of its change: exactly one of the engine tasks wins it, and a restart
finds old changes claimed). The winner submits one ``alarm`` notice to the dispatcher when
the change enters ALARM or leaves it (``kyperian.domain.notices.alarm_worth_telling``).
Each task remembers the changes it has already tried to claim, so it writes once per change
(and once per alarm when it starts), not once per alarm per poll.
The on-call e-mail of the alert topic is unchanged: this is the trader's copy, filtered
per channel like every notice. Runs on its own daemon thread, off the decision path; a
failed poll is logged and tried again next time, never fatal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from kyperian.adapters.aws.alarms import AlarmReading, CloudWatchAlarms, DynamoAlarmStates
from kyperian.domain.errors import KyperianError
from kyperian.domain.notices import ALARM_STATE, Notice, alarm_notice, alarm_worth_telling
from kyperian.engine.telemetry import logger

FRESH: Final = timedelta(hours=1)
"""An alarm first seen in ALARM is told only if it went there this recently (else it is old
news a restart or an expired record would replay)."""


@dataclass(frozen=True)
class WatchStatus:
    """What the cockpit's health panel shows."""

    interval: float
    last_poll: datetime | None = None
    alarming: tuple[str, ...] = ()
    problem: str | None = None


class AlarmWatch:
    """A daemon thread polling the alarms and submitting a notice per claimed change."""

    def __init__(
        self,
        alarms: CloudWatchAlarms,
        states: DynamoAlarmStates,
        submit: Callable[[Notice], None],
        interval: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._alarms = alarms
        self._states = states
        self._submit = submit
        self._clock = clock
        self.status = WatchStatus(interval=interval)
        self._seen: dict[str, datetime] = {}
        """Alarm -> time of the change this task already tried to claim (won or lost)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_once(self) -> list[Notice]:
        """One poll; returns the notices it submitted.

        Raises
        ------
        TemporaryError, OperationalError
            When CloudWatch or DynamoDB fails; changes not yet claimed are claimed next poll.
        """
        now = self._clock()
        readings = self._alarms.read()
        sent = [notice for reading in readings if (notice := self._consider(reading, now))]
        alarming = tuple(sorted(r.name for r in readings if r.state == ALARM_STATE))
        self.status = WatchStatus(self.status.interval, now, alarming)
        return sent

    def _consider(self, reading: AlarmReading, now: datetime) -> Notice | None:
        if self._seen.get(reading.name) == reading.changed_at:
            return None
        claimed = self._states.claim(reading)
        self._seen[reading.name] = reading.changed_at
        if claimed is None:
            return None
        fresh = now - reading.changed_at <= FRESH
        if not alarm_worth_telling(claimed.previous, reading.state, fresh):
            return None
        notice = alarm_notice(
            reading.name,
            reading.state,
            claimed.previous,
            reading.reason,
            reading.description,
            reading.changed_at,
            self._states.region,
        )
        logger.info(
            "alarm state change forwarded",
            extra={"alarm": reading.name, "state": reading.state, "previous": claimed.previous},
        )
        self._submit(notice)
        return notice

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alarm-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except KyperianError as exc:
                self._failed(str(exc))
            except Exception as exc:  # the loop must outlive any single bug; it is logged
                logger.exception("alarm poll failed")
                self._failed(f"{type(exc).__name__}: {exc}")
            self._stop.wait(self.status.interval)

    def _failed(self, problem: str) -> None:
        logger.warning("alarm poll failed", extra={"reason": problem})
        old = self.status
        self.status = WatchStatus(old.interval, old.last_poll, old.alarming, problem)
