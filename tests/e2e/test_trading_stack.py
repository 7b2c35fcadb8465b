"""Auto-trading on the local stack: orders through the ledger survive an engine restart.

`kyperian up` with ``KYPERIAN_AUTO_TRADING=true`` (what ``KYPERIAN_AUTO_TRADING=true make
run`` starts): the paper venue and the ledger live in the emulator's DynamoDB, so killing
the engine process (as ECS replaces a task) changes neither the positions nor the account.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kyperian.client import Answer, Unreachable, request
from kyperian.local.launcher import RunningStack, StackDidNotStart, launch
from kyperian.local.supervisor import port_open

pytestmark = pytest.mark.e2e

API_KEY = "e2e-trading-key-0123456789abcdefghijklmnop"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """GIVEN the whole system started with auto-trading on."""
    previous = os.environ.get("KYPERIAN_AUTO_TRADING")
    os.environ["KYPERIAN_AUTO_TRADING"] = "true"
    try:
        started = launch(API_KEY, tmp_path_factory.mktemp("trading"))
    except StackDidNotStart as exc:
        pytest.fail(str(exc))
    finally:
        if previous is None:
            os.environ.pop("KYPERIAN_AUTO_TRADING", None)
        else:
            os.environ["KYPERIAN_AUTO_TRADING"] = previous
    try:
        yield started
    finally:
        started.stop()


def _engine(stack: RunningStack, path: str, timeout: float = 60.0) -> Answer:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return request("GET", f"{stack.engine}{path}", bearer=stack.engine_token)
        except Unreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _filled_orders(stack: RunningStack, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        orders = _engine(stack, "/orders?status=FILLED").body.get("value", [])
        if orders:
            return list(orders)
        time.sleep(0.3)
    pytest.fail("no order was filled")


def test_positions_and_the_paper_account_survive_an_engine_restart(stack: RunningStack) -> None:
    # GIVEN an aligned setup that the engine trades on the paper venue
    base = {"passphrase": API_KEY, "symbol": "NASDAQ:E2ET", "source": "luxalgo", "price": 100.0}
    for action, timeframe in (("buy", "1W"), ("buy", "D"), ("strong_buy", "240")):
        body = {**base, "action": action, "timeframe": timeframe, "confidence": 90}
        assert request("POST", f"{stack.gateway}/webhook", body).status == 202
    [order] = _filled_orders(stack)
    before = (
        _engine(stack, "/positions").body,
        _engine(stack, "/account").body,
        _engine(stack, "/broker/paper/positions").body,
        _engine(stack, "/broker/paper/account").body,
    )
    assert order["decision_id"] == order["client_order_id"]

    # WHEN the engine process is killed and the supervisor starts a new one
    engine_pid = stack.pids()["engine"]
    os.kill(engine_pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while port_open(stack.engine_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = (
        _engine(stack, "/positions").body,
        _engine(stack, "/account").body,
        _engine(stack, "/broker/paper/positions").body,
        _engine(stack, "/broker/paper/account").body,
    )

    # THEN the ledger's positions and account and the paper venue's are exactly as before
    assert stack.pids()["engine"] != engine_pid
    assert after == before
    [position] = before[0]["value"]
    assert position["symbol"] == "E2ET"
    assert before[1]["halted"] is False
