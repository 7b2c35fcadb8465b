"""Alpaca paper account, for real: skipped unless paper keys are given.

Run against your own paper account (never live keys: the test places and cancels an order)::

    KYPERIAN_LIVE_ALPACA_KEY_ID=PK... KYPERIAN_LIVE_ALPACA_SECRET_KEY=... \\
        uv run pytest tests/live/test_alpaca_paper.py -m live -v

It reads the account, places a 1-share AAPL limit buy far below the market (it cannot fill),
finds it by its client order id, cancels it, and checks the final state. CI never sets the keys.
"""

from __future__ import annotations

import os
import uuid
from decimal import Decimal

import pytest

from kyperian.adapters.brokers.alpaca import AlpacaBroker, AlpacaConfig
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderStatus, OrderType, TimeInForce

KEY = os.environ.get("KYPERIAN_LIVE_ALPACA_KEY_ID", "")
SECRET = os.environ.get("KYPERIAN_LIVE_ALPACA_SECRET_KEY", "")

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not (KEY and SECRET), reason="no Alpaca paper keys (see module doc)"),
]


def test_a_resting_order_round_trip_on_the_paper_account() -> None:
    broker = AlpacaBroker(
        AlpacaConfig.model_validate({"api_key_id": KEY, "api_secret_key": SECRET, "paper": True})
    )
    broker.check()
    assert broker.account().equity > 0
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
    assert found.order_id == placed.order_id
    assert any(o.order_id == placed.order_id for o in broker.open_orders())
    cancelled = broker.cancel_order(placed.order_id)
    assert cancelled.status in {OrderStatus.CANCELED, OrderStatus.ACCEPTED}  # pending_cancel
