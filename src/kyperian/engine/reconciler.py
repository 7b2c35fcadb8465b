"""The reconciliation loop: at start and every N seconds, the ledger against the venue.

Each round expires pending approvals past their time, settles orders left in doubt (a
lease expired: ``find_order`` at the venue), then compares positions and resting orders
(``kyperian.execution.reconcile``). A mismatch halts the account (the kill switch in the
ledger, so every task stops), is logged with both sides, counted
(``ReconciliationMismatches``, ``TradingHalted``) and alarmed; a person decides which side
is right (runbooks/reconciliation-mismatch.md). Runs on its own daemon thread; a failing
round is logged and retried next time, never fatal to the service.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from kyperian.domain.errors import KyperianError
from kyperian.engine.telemetry import EngineMetrics, logger
from kyperian.execution import Mismatch, OrderExecutor


class Reconciler:
    """Runs ``OrderExecutor.reconcile`` now and then every ``interval`` seconds."""

    def __init__(
        self,
        execution: OrderExecutor,
        metrics: EngineMetrics,
        interval: float,
        on_mismatch: Callable[[str, list[Mismatch], str], None] | None = None,
    ) -> None:
        self.execution = execution
        self.on_mismatch = on_mismatch
        """Told (account, mismatches, halt reason) after a halt: the notifier (docs/cockpit.md)."""
        self.metrics = metrics
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Mismatch]:
        """One round; returns the mismatches (the account is halted when there are any)."""
        mismatches = self.execution.reconcile()
        self.metrics.reconciliation(len(mismatches))
        if mismatches:
            logger.error(
                "ledger and venue disagree; trading halted on the account",
                extra={
                    "account": str(self.execution.account),
                    "mismatches": [m.model_dump() for m in mismatches],
                },
            )
            reason = f"reconciliation: {len(mismatches)} mismatch(es), first {mismatches[0]}"
            self.execution.halt(reason)
            self.metrics.halted(reason)
            if self.on_mismatch is not None:
                self.on_mismatch(str(self.execution.account), mismatches, reason)
        return mismatches

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except KyperianError as exc:
                logger.warning("reconciliation round failed", extra={"reason": str(exc)})
            except Exception:  # the loop must outlive any single bug; it is logged
                logger.exception("reconciliation round failed")
            self._stop.wait(self.interval)
