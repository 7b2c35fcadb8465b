"""A Schwab account, for real and read-only: skipped unless asked for.

Schwab has no paper environment, so this test never places an order. With AWS credentials for
an environment whose token secret holds a login (``kyperian broker login schwab``) and the app's
credentials in ``KYPERIAN_BROKER_CREDENTIALS``::

    KYPERIAN_LIVE_SCHWAB=1 KYPERIAN_ENVIRONMENT=staging \\
    KYPERIAN_BROKER_CREDENTIALS='{"schwab": {"app_key": "...", "app_secret": "..."}}' \\
        uv run pytest tests/live/test_schwab_readonly.py -m live -v

It checks the login, reads the account, positions and open orders, and that orders stay
refused without ``KYPERIAN_SCHWAB_LIVE_ORDERS``.
"""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from kyperian.adapters.brokers.venues import Venues
from kyperian.domain.brokers import OrderRequest, OrderSide
from kyperian.domain.errors import InvalidOrderError
from kyperian.settings import Settings

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("KYPERIAN_LIVE_SCHWAB"), reason="see module doc"),
]


def test_the_account_reads_and_orders_stay_refused() -> None:
    settings = Settings(schwab_live_orders=False)
    broker = Venues(settings).get("schwab")
    broker.check()
    assert broker.account().equity >= 0
    broker.positions()
    broker.open_orders()
    with pytest.raises(InvalidOrderError, match="no paper environment"):
        broker.submit_order(
            OrderRequest(
                client_order_id="never", symbol="AAPL", side=OrderSide.BUY, quantity=Decimal(1)
            )
        )
