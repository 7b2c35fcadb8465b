"""The exactly-once drill as a test: what ``make drill`` prints, asserted."""

from __future__ import annotations

import shutil

import pytest

from kyperian.ops.exactly_once_drill import run

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_one_decision_and_one_order_per_signal_whatever_the_faults() -> None:
    # GIVEN the drill's engines on an emulator and a real redis-server
    lines: list[str] = []

    # WHEN each scenario's alert is delivered three times, with Redis up, down, flushed,
    # across two engine processes, and with crashes before and after the venue call
    counts = run(lines.append)

    # THEN the tables and the venue hold one decision and one order per signal, nothing
    # actionable is left untraded, and no symbol's exposure passes the cap
    assert lines[-1] == (
        "decisions_per_signal=1 orders_per_signal=1 actionable_untraded=0 combined_exposure<=cap"
    ), "\n".join(lines)
    assert counts.ok
    assert set(counts.outcomes) == {
        "redis-up",
        "redis-down",
        "cache-flush",
        "two-processes",
        "crash-before-venue",
        "crash-after-venue",
    }
    assert counts.outcomes["crash-before-venue"][0] == "CRASHED"
