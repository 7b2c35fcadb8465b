"""Publishes accepted signals on the EventBridge bus as ``SignalValidated`` events.

The rule on the bus routes them to the engine's SQS queue and to the audit log group.
``PutEvents`` can succeed as a call yet fail some entries, so failed entries are
retried on their own, with a short growing pause, before giving up with
``PublishFailed`` naming exactly which signals were not published.

Retries are ours (the client is built with one attempt), bounded by a count and by a time
budget: no attempt starts once ``budget_seconds`` have passed, so with the client's
timeouts the publisher gives up early enough inside the Lambda's timeout for the caller
to undo what it stored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError

from kyperian.adapters.aws.clients import classify
from kyperian.domain.errors import PublishFailed, TemporaryError
from kyperian.domain.models import Signal
from kyperian.domain.ports import SignalPublisher

EVENT_SOURCE: Final = "kyperian.signal.validator"
DETAIL_TYPE: Final = "SignalValidated"
_MAX_ENTRIES_PER_CALL: Final = 10  # the PutEvents limit
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
"""What ``json.dumps(detail, separators=(",", ":"))`` builds on every call, built once."""


# Failures after the request left: EventBridge may have accepted the entries.
_OUTCOME_UNKNOWN: Final = (ReadTimeoutError, ConnectionClosedError)


class EventBridgePublisher(SignalPublisher):
    """``SignalPublisher`` on an EventBridge bus."""

    def __init__(
        self,
        bus_name: str,
        client: Any,
        attempts: int = 3,
        pause_seconds: float = 0.05,
        budget_seconds: float = 3.0,
    ) -> None:
        self.bus_name = bus_name
        self._client = client
        self._attempts = attempts
        self._pause = pause_seconds
        self._budget = budget_seconds

    def _entry(self, signal: Signal) -> dict[str, Any]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": _COMPACT_JSON.encode(signal.to_event_detail()),
            "EventBusName": self.bus_name,
            "Resources": [],
            "Time": signal.received_at,
        }

    def publish(self, signals: Sequence[Signal]) -> None:
        deadline = time.monotonic() + self._budget
        for start in range(0, len(signals), _MAX_ENTRIES_PER_CALL):
            try:
                self._publish_chunk(list(signals[start : start + _MAX_ENTRIES_PER_CALL]), deadline)
            except PublishFailed as exc:
                rest = [s.signal_id for s in signals[start + _MAX_ENTRIES_PER_CALL :]]
                if not rest:
                    raise
                raise PublishFailed(exc.signal_ids + rest, exc.cause, exc.maybe_published) from exc

    def _publish_chunk(self, pending: list[Signal], deadline: float) -> None:
        reason = ""
        outcome_unknown = False  # an attempt was sent but never answered
        for attempt in range(self._attempts):
            if attempt:
                pause = self._pause * attempt
                if time.monotonic() + pause >= deadline:
                    reason += " (publish time budget spent)"
                    break
                time.sleep(pause)
            try:
                response = self._client.put_events(Entries=[self._entry(s) for s in pending])
            except (ClientError, BotoCoreError) as exc:
                reason = str(classify(exc, "publishing"))
                outcome_unknown = outcome_unknown or isinstance(exc, _OUTCOME_UNKNOWN)
                continue
            results = response.get("Entries", [])
            failed = [s for s, r in zip(pending, results, strict=False) if "ErrorCode" in r]
            if len(results) < len(pending):
                failed += pending[len(results) :]
            if not failed:
                return
            reason = ", ".join(
                sorted({r.get("ErrorCode", "?") for r in results if "ErrorCode" in r})
            )
            pending = failed
        raise PublishFailed(
            [s.signal_id for s in pending], reason or "unknown error", outcome_unknown
        )

    def check(self) -> None:
        try:
            self._client.describe_event_bus(Name=self.bus_name)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the event bus") from exc
        except Exception as exc:  # pragma: no cover - defensive: never crash a health check
            raise TemporaryError(f"reading the event bus failed: {type(exc).__name__}") from exc
