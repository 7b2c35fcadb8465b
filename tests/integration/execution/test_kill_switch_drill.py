"""The kill-switch drill as a test: what ``make drill`` prints, asserted."""

from __future__ import annotations

import shutil

import pytest

from kyperian.ops.kill_switch_drill import SEEN_WITHIN_MS, run

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_halt_from_the_cli_stops_another_engine_process_flattens_and_resumes() -> None:
    # GIVEN engine B (another process) trading, engine A serving the API
    lines: list[str] = []

    # WHEN an operator runs `kyperian halt --flatten`, waits, then `kyperian resume`
    counts = run(lines.append)

    # THEN B saw the switch within two seconds, no order of B's went out while halted
    # (ledger and venue), every position was closed by a filled flattening order, and
    # B traded again after the resume
    assert counts.ok, "\n".join(lines)
    assert counts.halt_seen_ms is not None
    assert 0 <= counts.halt_seen_ms <= SEEN_WITHIN_MS
    assert counts.orders_while_halted == 0
    assert counts.flatten_orders >= 3
    assert counts.flatten_unfilled == 0
    assert counts.unflattened_positions == 0
    assert counts.orders_after_resume >= 1
    assert lines[-1].startswith(f"halt_seen_ms={counts.halt_seen_ms} orders_while_halted=0 ")
