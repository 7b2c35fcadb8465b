"""The Interactive Brokers venue: mapping on ib_async's own objects, reconnection, refusals.

No Gateway runs here: the mapping is tested with ib_async's ``Order``/``Trade``/``Position``/
``PortfolioItem``/``AccountValue`` exactly as the library builds them from the wire.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ib_async import (
    Contract,
    LimitOrder,
    MarketOrder,
    OrderStatus,
    PortfolioItem,
    Stock,
    Trade,
    TradeLogEntry,
)
from ib_async import Position as IbPosition
from ib_async.objects import AccountValue

from kyperian.adapters.brokers.ibkr import IbkrBroker, IbkrConfig
from kyperian.adapters.brokers.ibkr.execution import keep_connected
from kyperian.adapters.brokers.ibkr.mapping import (
    account_from_summary,
    ib_order,
    order_from_trade,
    position_from_ib,
)
from kyperian.adapters.brokers.ibkr.symbols import IbkrSymbols
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderType, TimeInForce
from kyperian.domain.brokers import OrderStatus as Status
from kyperian.domain.errors import InvalidOrderError, TemporaryError

SYMBOLS = IbkrSymbols()
T0 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)


def _trade(status: str, filled: float = 0, avg: float = 0.0, message: str = "") -> Trade:
    order = LimitOrder("BUY", 10, 150.25, orderRef="dec-0001", tif="DAY")
    order.orderId, order.permId = 12, 987654321
    log = [TradeLogEntry(T0, "PendingSubmit", "")]
    if message:
        log.append(TradeLogEntry(T0.replace(minute=31), status, message, 201))
    return Trade(
        contract=Stock("AAPL", "SMART", "USD"),
        order=order,
        orderStatus=OrderStatus(
            orderId=12, status=status, filled=filled, remaining=10 - filled, avgFillPrice=avg
        ),
        log=log,
    )


def test_the_client_order_id_travels_in_order_ref() -> None:
    # GIVEN a GTC limit sell allowed outside regular hours
    request = OrderRequest(
        client_order_id="dec-0042",
        symbol="AAPL",
        side=OrderSide.SELL,
        quantity=Decimal(5),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("190.5"),
        time_in_force=TimeInForce.GTC,
        extended_hours=True,
    )
    # WHEN it becomes an ib_async order
    order = ib_order(request, "DU1234567")
    # THEN IB gets a LMT order carrying the client id in orderRef, on the account
    assert (order.orderType, order.action, order.totalQuantity) == ("LMT", "SELL", 5.0)
    assert order.lmtPrice == 190.5
    assert order.orderRef == "dec-0042"
    assert (order.tif, order.outsideRth, order.account) == ("GTC", True, "DU1234567")


def test_a_market_order_has_no_prices() -> None:
    request = OrderRequest(
        client_order_id="dec-1", symbol="AAPL", side=OrderSide.BUY, quantity=Decimal(1)
    )
    order = ib_order(request, None)
    assert isinstance(order, MarketOrder)
    assert order.orderType == "MKT"
    assert order.account == ""


@pytest.mark.parametrize(
    ("ib_status", "filled", "expected"),
    [
        ("PreSubmitted", 0, Status.ACCEPTED),
        ("Submitted", 4, Status.PARTIALLY_FILLED),
        ("Filled", 10, Status.FILLED),
        ("Cancelled", 0, Status.CANCELED),
        ("ApiCancelled", 0, Status.CANCELED),
        ("Inactive", 0, Status.REJECTED),
    ],
)
def test_trades_map_to_the_contract(ib_status: str, filled: float, expected: Status) -> None:
    # GIVEN an ib_async Trade in one of IB's states WHEN mapped
    order = order_from_trade(_trade(ib_status, filled, 150.0 if filled else 0.0), SYMBOLS)
    # THEN the status, quantities, ids and prices are the contract's
    assert order.status is expected
    assert order.filled_quantity == Decimal(filled)
    assert order.average_fill_price == (Decimal(150) if filled else None)
    assert order.order_id == "987654321"
    assert order.client_order_id == "dec-0001"
    assert order.limit_price == Decimal("150.25")
    assert order.stop_price is None


def test_a_rejection_carries_ibs_message() -> None:
    # GIVEN IB rejected the order with error 201
    trade = _trade("Inactive", message="Order rejected - reason: insufficient margin")
    # WHEN mapped THEN the reason is IB's message and the update time is the log's last
    order = order_from_trade(trade, SYMBOLS)
    assert order.status is Status.REJECTED
    assert order.reason == "Order rejected - reason: insufficient margin"
    assert order.updated_at == T0.replace(minute=31)


def test_portfolio_items_and_positions_map_with_signs_and_share_classes() -> None:
    # GIVEN a short share class in the portfolio and a Paxos crypto position
    brk = Contract(secType="STK", symbol="BRK B", currency="USD")
    item = PortfolioItem(brk, -3.0, 410.0, -1230.0, 405.0, -15.0, 0.0, "DU1")
    btc = IbPosition("DU1", Contract(secType="CRYPTO", symbol="BTC", currency="USD"), 0.5, 60000.0)
    # WHEN mapped
    short = position_from_ib(item, SYMBOLS)
    coin = position_from_ib(btc, SYMBOLS)
    # THEN symbols are the engine's and quantities signed
    assert (short.symbol, short.quantity, short.market_value) == (
        "BRK.B",
        Decimal(-3),
        Decimal(-1230),
    )
    assert short.unrealized_pnl == Decimal(-15)
    assert (coin.symbol, coin.quantity, coin.average_price) == (
        "BTCUSD",
        Decimal("0.5"),
        Decimal(60000),
    )


def test_the_account_summary_becomes_cash_equity_and_buying_power() -> None:
    # GIVEN accountSummary values, some for another account
    values = [
        AccountValue("DU1", "NetLiquidation", "100250.5", "USD", ""),
        AccountValue("DU1", "TotalCashValue", "50000", "USD", ""),
        AccountValue("DU1", "BuyingPower", "400000", "USD", ""),
        AccountValue("DU1", "AccountType", "INDIVIDUAL", "", ""),
        AccountValue("DU2", "NetLiquidation", "1", "USD", ""),
    ]
    # WHEN read for DU1 THEN only DU1's figures count
    account = account_from_summary(values, "DU1")
    assert (account.equity, account.cash, account.buying_power) == (
        Decimal("100250.5"),
        Decimal(50000),
        Decimal(400000),
    )
    assert account.currency == "USD"


def test_symbols_ib_cannot_trade_are_refused() -> None:
    broker = IbkrBroker(IbkrConfig(host="127.0.0.1"), start=False)
    for symbol, reason in [
        ("BTCUSDT.P", "perpetual"),
        ("ES1!", "no expiry"),
        ("BTCUSDT", "against USD only"),
    ]:
        with pytest.raises(InvalidOrderError, match=reason):
            broker.contract(symbol)
    # AND the ones it can are stocks on SMART (space for the class) or Paxos crypto
    assert broker.contract("BRK.B").symbol == "BRK B"
    assert broker.contract("COINBASE:BTCUSD").exchange == "PAXOS"


def test_without_a_gateway_calls_are_temporary_and_name_the_address() -> None:
    # GIVEN an adapter whose Gateway is not connected
    broker = IbkrBroker(IbkrConfig(host="10.0.0.9", port=4001), start=False)
    # WHEN used THEN it says where it tried, and paper follows the port
    with pytest.raises(TemporaryError, match=r"10\.0\.0\.9:4001"):
        broker.check()
    with pytest.raises(TemporaryError):
        broker.submit_order(
            OrderRequest(
                client_order_id="c", symbol="AAPL", side=OrderSide.BUY, quantity=Decimal(1)
            )
        )
    assert broker.caps.paper is False
    assert IbkrBroker(IbkrConfig(host="h"), start=False).caps.paper is True


def test_reconnection_waits_double_up_to_the_cap_then_reset() -> None:
    # GIVEN a Gateway that refuses four connections, then accepts, then drops once
    waits: list[float] = []
    attempts = {"n": 0}
    connected = {"up": False}
    stopping = asyncio.Event()

    async def connect() -> None:
        attempts["n"] += 1
        if attempts["n"] <= 4 or attempts["n"] == 6:
            raise ConnectionRefusedError("gateway down")
        connected["up"] = True

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if connected["up"] and attempts["n"] == 5:
            connected["up"] = False  # the nightly restart drops the connection
        if attempts["n"] >= 7:
            stopping.set()

    # WHEN the loop keeps the connection
    asyncio.run(keep_connected(connect, lambda: connected["up"], stopping, 4.0, sleep=sleep))
    # THEN it waited 1, 2, 4, 4 (capped), reconnected, and started again from 1 after the drop
    assert waits[:4] == [1.0, 2.0, 4.0, 4.0]
    assert 1.0 in waits[4:]
    assert attempts["n"] == 7
