"""Keeps the Schwab token warm and its expiry visible while the engine runs.

Every ``interval`` seconds the watch asks the Schwab adapter for a fresh token (refreshing
it, through the one shared refresher, when the access token nears expiry) and the adapter
reports the refresh token's days left as the ``SchwabRefreshTokenDaysLeft`` metric, which
the ``kyperian-<env>-schwab-login-expiring`` alarm watches (runbooks/schwab-login-expiring.md).
Failures are logged and retried at the next tick, never raised: trading does not depend
on this thread.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Final

from kyperian.domain.errors import KyperianError
from kyperian.engine.telemetry import logger

if TYPE_CHECKING:
    from kyperian.adapters.brokers.venues import Venues

INTERVAL_SECONDS: Final = 300.0


class VenueWatch:
    """A daemon thread ticking over the configured Schwab venue."""

    def __init__(self, venues: Venues, interval: float = INTERVAL_SECONDS) -> None:
        self._venues = venues
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="venue-watch", daemon=True)

    @classmethod
    def start_for(cls, venues: Venues) -> VenueWatch | None:
        """A running watch when Schwab is configured, else None."""
        if not venues.configured("schwab"):
            return None
        watch = cls(venues)
        watch._thread.start()
        return watch

    def tick(self) -> None:
        """One pass: refresh the token if due (the adapter reports its days left)."""
        try:
            broker = self._venues.get("schwab")
            fresh = getattr(broker, "fresh_token", None)
            if callable(fresh):
                fresh()
        except KyperianError as exc:
            logger.warning("schwab token check failed", extra={"reason": str(exc)})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self._interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
