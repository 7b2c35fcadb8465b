"""Degraded mode: remember that Redis failed, retry it now and then, recover by itself.

While Redis is down every message would otherwise wait for a socket timeout before
falling back to the Signals table. The circuit opens on a failure, lets one attempt
through every ``retry_seconds``, and closes on the first success; each recovery bumps
``generation`` so the processor refills the cache with what it missed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kyperian.engine.telemetry import logger


class CacheCircuit:
    """Thread-safe open/closed state of the cache (the worker and the API share it)."""

    def __init__(self, retry_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._open = False
        self._retry_at = 0.0
        self.generation = 0
        """Incremented on every recovery: a cache that was down may have lost or missed keys."""

    @property
    def degraded(self) -> bool:
        """True while the cache is considered down."""
        return self._open

    def should_try(self) -> bool:
        """Whether to use the cache now: always when healthy, once per interval when down."""
        with self._lock:
            if not self._open:
                return True
            if self._clock() >= self._retry_at:
                self._retry_at = self._clock() + self._retry_seconds
                return True
            return False

    def failed(self, reason: str) -> None:
        """Record a failure; the first one switches to degraded mode (logged once)."""
        with self._lock:
            opened = not self._open
            self._open = True
            self._retry_at = self._clock() + self._retry_seconds
        if opened:
            logger.warning(
                "cache unavailable: deciding from the Signals table", extra={"reason": reason}
            )

    def succeeded(self) -> None:
        """Record a success; the first one after a failure ends degraded mode (logged once)."""
        with self._lock:
            recovered = self._open
            self._open = False
            if recovered:
                self.generation += 1
        if recovered:
            logger.info("cache available again: leaving degraded mode")
