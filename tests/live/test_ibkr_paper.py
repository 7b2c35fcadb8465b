"""An IB Gateway logged in to a paper account, for real: skipped unless one is named.

Start IB Gateway (or TWS) with a paper login and the API enabled on port 4002, then::

    KYPERIAN_LIVE_IBKR_HOST=127.0.0.1 KYPERIAN_LIVE_IBKR_PORT=4002 \\
        uv run pytest tests/live/test_ibkr_paper.py -m live -v

The test refuses a live port (4001/7496). It reads the account and positions, places a 1-share
AAPL limit buy far below the market, finds it by ``orderRef``, and cancels it.
"""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal

import pytest

from kyperian.adapters.brokers.ibkr import IbkrBroker, IbkrConfig
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderType, TimeInForce
from kyperian.domain.errors import TemporaryError

HOST = os.environ.get("KYPERIAN_LIVE_IBKR_HOST", "")
PORT = int(os.environ.get("KYPERIAN_LIVE_IBKR_PORT", "4002"))

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not HOST, reason="no IB Gateway named (see module doc)"),
]


def test_a_resting_order_round_trip_through_the_paper_gateway() -> None:
    config = IbkrConfig(host=HOST, port=PORT, client_id=91)
    assert config.paper, "refusing to place an order through a live port"
    broker = IbkrBroker(config)
    try:
        for _ in range(50):  # the loop thread connects in the background
            try:
                broker.check()
                break
            except TemporaryError:
                time.sleep(0.2)
        assert broker.account().equity > 0
        broker.positions()
        client_id = f"kyperian-live-{uuid.uuid4().hex[:12]}"
        placed = broker.submit_order(
            OrderRequest(
                client_order_id=client_id,
                symbol="AAPL",
                side=OrderSide.BUY,
                quantity=Decimal(1),
                order_type=OrderType.LIMIT,
                limit_price=Decimal(1),
                time_in_force=TimeInForce.GTC,
            )
        )
        found = broker.find_order(client_id)
        assert found is not None
        assert found.client_order_id == client_id
        broker.cancel_order(placed.order_id)
    finally:
        broker.close()
