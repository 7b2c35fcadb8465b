"""Errors that say what the caller should do next.

Adapters translate vendor exceptions (botocore, redis, broker SDKs) into these, so
handlers decide the HTTP answer from the class alone: a ``TemporaryError`` is worth a
retry (and a 503 if retries run out), an ``OperationalError`` needs a human, a
``DuplicateSignal`` is not an error for the caller at all.
"""

from __future__ import annotations

from dataclasses import dataclass


class KyperianError(Exception):
    """Base of every error the system raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: which field, and why."""

    field: str
    reason: str


class DuplicateSignal(KyperianError):
    """This alert was already accepted; ``signal_id`` is the first delivery's id."""

    def __init__(self, signal_id: str) -> None:
        super().__init__(f"signal {signal_id} already stored")
        self.signal_id = signal_id


class TemporaryError(KyperianError):
    """A dependency failed in a way that may pass: retry later."""


class RateLimited(TemporaryError):
    """A venue asked us to slow down; ``retry_after`` seconds is when it will take calls again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(f"{message} (retry in {retry_after:.0f} s)")
        self.retry_after = retry_after


class OperationalError(KyperianError):
    """A dependency is misconfigured or gone: retrying will not help, a human must act."""


class InvalidOrderError(KyperianError):
    """A broker refused an order as malformed or not allowed: do not retry it."""


class PublishFailed(TemporaryError):
    """Some signals could not be published after retries; ``signal_ids`` names them.

    ``maybe_published``: an attempt timed out after the request was sent, so the bus may
    hold the events after all. Such rows must never be undone (an event would be left
    without its row); they stay pending and the sweeper publishes them.
    """

    def __init__(self, signal_ids: list[str], cause: str, maybe_published: bool = False) -> None:
        super().__init__(f"{len(signal_ids)} signal(s) not published: {cause}")
        self.signal_ids = signal_ids
        self.cause = cause
        self.maybe_published = maybe_published
