"""The paper venue: fills, positions, cash, limits and the capability checks of the contract."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kyperian.adapters.brokers.paper import PaperBroker, PaperBrokerConfig
from kyperian.domain.brokers import (
    Broker,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from kyperian.domain.errors import InvalidOrderError
from tests.unit.engine.fakes import MemoryPaperStore

D = Decimal


def _order(
    client_id: str, side: str, quantity: str, price: str | None = "100", **kwargs: object
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_id,
        symbol="AAPL",
        side=OrderSide(side),
        quantity=D(quantity),
        reference_price=D(price) if price else None,
        **kwargs,
    )


def test_a_market_buy_fills_at_the_reference_price_and_moves_cash() -> None:
    # GIVEN a fresh paper account with 100 000
    broker = PaperBroker(MemoryPaperStore())

    # WHEN 10 AAPL are bought at 100
    order = broker.submit_order(_order("c1", "BUY", "10"))

    # THEN the order is filled, the position exists, cash fell by 1 000, equity is unchanged
    assert order.status is OrderStatus.FILLED
    assert order.average_fill_price == D(100)
    [position] = broker.positions()
    assert (position.quantity, position.average_price) == (D(10), D(100))
    account = broker.account()
    assert (account.cash, account.equity) == (D(99000), D(100000))


def test_adding_averages_the_price_and_a_flip_resets_it() -> None:
    # GIVEN 10 bought at 100 and 10 more at 110
    broker = PaperBroker(MemoryPaperStore())
    broker.submit_order(_order("c1", "BUY", "10", "100"))
    broker.submit_order(_order("c2", "BUY", "10", "110"))
    assert broker.positions()[0].average_price == D(105)

    # WHEN 30 are sold at 120 (shorting allowed by default)
    broker.submit_order(_order("c3", "SELL", "30", "120"))

    # THEN the position is short 10 at 120, and the realized gain is in the cash
    [position] = broker.positions()
    assert (position.quantity, position.average_price) == (D(-10), D(120))
    assert broker.account().cash == D(100000) - D(1000) - D(1100) + D(3600)


def test_selling_short_is_refused_when_the_account_cannot_short() -> None:
    # GIVEN an account without shorting and no position
    broker = PaperBroker(MemoryPaperStore(), PaperBrokerConfig(allow_short=False))
    assert not broker.caps.short_selling

    # WHEN a sell is sent  THEN it is refused and recorded as rejected
    with pytest.raises(InvalidOrderError, match="short"):
        broker.submit_order(_order("c1", "SELL", "1"))
    rejected = broker.find_order("c1")
    assert rejected is not None
    assert rejected.status is OrderStatus.REJECTED
    assert broker.positions() == []


def test_orders_beyond_buying_power_are_refused() -> None:
    # GIVEN 100 000 of equity and no leverage  WHEN 1 001 shares at 100 are bought  THEN refused
    broker = PaperBroker(MemoryPaperStore())
    with pytest.raises(InvalidOrderError, match="buying power"):
        broker.submit_order(_order("c1", "BUY", "1001"))


def test_a_limit_order_rests_until_the_price_reaches_it() -> None:
    # GIVEN a buy limit at 95 while the price is 100
    broker = PaperBroker(MemoryPaperStore())
    order = broker.submit_order(
        _order("c1", "BUY", "5", "100", order_type=OrderType.LIMIT, limit_price=D(95))
    )
    assert order.status is OrderStatus.ACCEPTED
    assert broker.open_orders() == [order]

    # WHEN the price moves to 94
    filled = broker.mark("AAPL", D(94))

    # THEN it fills at the better price, 94
    assert [o.client_order_id for o in filled] == ["c1"]
    assert broker.get_order(order.order_id).average_fill_price == D(94)
    assert broker.open_orders() == []


def test_an_ioc_limit_that_cannot_fill_is_cancelled_and_cancel_needs_an_open_order() -> None:
    # GIVEN an immediate-or-cancel buy limit under the market
    broker = PaperBroker(MemoryPaperStore())
    order = broker.submit_order(
        _order(
            "c1", "BUY", "5", "100", order_type=OrderType.LIMIT, limit_price=D(90),
            time_in_force=TimeInForce.IOC,
        )
    )  # fmt: skip

    # THEN it is cancelled at once, and cancelling it again is refused
    assert order.status is OrderStatus.CANCELED
    with pytest.raises(InvalidOrderError, match="not open"):
        broker.cancel_order(order.order_id)


def test_the_contract_checks_capabilities_before_the_venue_sees_the_order() -> None:
    # GIVEN a paper account without fractions
    broker = PaperBroker(MemoryPaperStore(), PaperBrokerConfig(fractional=False))

    # WHEN a stop order or a fractional quantity is sent  THEN the base class refuses them
    with pytest.raises(InvalidOrderError, match="STOP"):
        broker.submit_order(_order("c1", "BUY", "1", order_type=OrderType.STOP, stop_price=D(101)))
    with pytest.raises(InvalidOrderError, match="fractional"):
        broker.submit_order(_order("c2", "BUY", "1.5"))
    assert broker.find_order("c1") is None


def test_a_client_order_id_is_used_once_and_market_orders_need_a_price() -> None:
    broker = PaperBroker(MemoryPaperStore())
    broker.submit_order(_order("c1", "BUY", "1"))
    # GIVEN an id already used  WHEN reused  THEN refused (no duplicate order)
    with pytest.raises(InvalidOrderError, match="already used"):
        broker.submit_order(_order("c1", "BUY", "1"))
    # GIVEN a symbol never priced  WHEN a market order has no reference price  THEN refused
    with pytest.raises(InvalidOrderError, match="no price"):
        broker.submit_order(
            OrderRequest(client_order_id="c2", symbol="MSFT", side=OrderSide.BUY, quantity=D(1))
        )


def test_close_position_uses_the_default_of_the_contract() -> None:
    # GIVEN a long of 10  WHEN closed  THEN the optional default sells 10 and the book is flat
    broker = PaperBroker(MemoryPaperStore())
    broker.submit_order(_order("c1", "BUY", "10"))
    closing = broker.close_position("AAPL", "c2")
    assert closing is not None
    assert closing.side is OrderSide.SELL
    assert closing.quantity == D(10)
    assert broker.positions() == []
    assert broker.close_position("AAPL", "c3") is None


def test_a_venue_missing_a_required_method_cannot_be_built() -> None:
    # GIVEN a venue that forgot to implement the required methods
    class Incomplete(Broker):
        name = "incomplete"

    # WHEN it is constructed  THEN it fails before any trade
    with pytest.raises(TypeError, match="abstract"):
        Incomplete()  # type: ignore[abstract]


def test_a_misspelt_capability_fails_at_class_creation() -> None:
    # GIVEN a capability override that does not exist  WHEN the class is defined  THEN it fails
    with pytest.raises(ValueError, match="stop_order"):

        class Typo(PaperBroker):
            capability_overrides = {"stop_order": True}  # noqa: RUF012
