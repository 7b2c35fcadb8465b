"""ib_async's objects to the broker contract's, and back. Pure: no connection, no loop.

The engine's client order id travels in ``Order.orderRef``, which IB keeps on the order
for its whole life (open, completed, and in the Gateway's order history), so reconciliation
finds an order by it after a lost answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from ib_async import LimitOrder, MarketOrder, PortfolioItem, StopLimitOrder, StopOrder, Trade
from ib_async import Order as IbOrder
from ib_async import Position as IbPosition
from ib_async.objects import AccountValue

from kyperian.adapters.brokers.ibkr.symbols import IbkrSymbols
from kyperian.domain.brokers import (
    Account,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)

_TYPES: Final = {
    "MKT": OrderType.MARKET,
    "LMT": OrderType.LIMIT,
    "STP": OrderType.STOP,
    "STP LMT": OrderType.STOP_LIMIT,
}
_TIF: Final = {t.value: t for t in TimeInForce}
_DONE: Final = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELED,
    "ApiCancelled": OrderStatus.CANCELED,
    "Inactive": OrderStatus.REJECTED,
}


def _number(value: float | Decimal | None) -> Decimal | None:
    """IB's numbers as Decimal; its 'unset' (1.7976931348623157e308) and NaN are None."""
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or math.isinf(number) or number >= 1e300:
        return None
    return Decimal(repr(number))


def ib_order(request: OrderRequest, account: str | None) -> IbOrder:
    """The ib_async order for a request, the client order id in ``orderRef``."""
    action = request.side.value
    quantity = float(request.quantity)
    common = {
        "orderRef": request.client_order_id,
        "tif": request.time_in_force.value,
        "outsideRth": request.extended_hours,
        "account": account or "",
        "transmit": True,
    }
    limit = float(request.limit_price) if request.limit_price is not None else 0.0
    stop = float(request.stop_price) if request.stop_price is not None else 0.0
    if request.order_type is OrderType.LIMIT:
        return LimitOrder(action, quantity, limit, **common)
    if request.order_type is OrderType.STOP:
        return StopOrder(action, quantity, stop, **common)
    if request.order_type is OrderType.STOP_LIMIT:
        return StopLimitOrder(action, quantity, limit, stop, **common)
    return MarketOrder(action, quantity, **common)


def _status(trade: Trade) -> OrderStatus:
    done = _DONE.get(trade.orderStatus.status)
    if done is not None:
        return done
    return OrderStatus.PARTIALLY_FILLED if trade.orderStatus.filled > 0 else OrderStatus.ACCEPTED


def _reason(trade: Trade, status: OrderStatus) -> str | None:
    if status.is_open or status is OrderStatus.FILLED:
        return None
    messages = [entry.message for entry in trade.log if entry.message]
    return messages[-1] if messages else f"ib status {trade.orderStatus.status}"


def order_from_trade(trade: Trade, symbols: IbkrSymbols) -> Order:
    """The contract's ``Order`` for an ib_async ``Trade``."""
    order, status = trade.order, _status(trade)
    times = [entry.time for entry in trade.log] or [datetime.now(UTC)]
    filled = Decimal(repr(float(trade.orderStatus.filled)))
    order_id = order.permId or order.orderId
    return Order(
        order_id=str(order_id),
        client_order_id=order.orderRef or f"ib-{order_id}",
        symbol=symbols.from_venue(trade.contract.symbol, trade.contract.secType),
        side=OrderSide.BUY if order.action == "BUY" else OrderSide.SELL,
        order_type=_TYPES.get(order.orderType, OrderType.MARKET),
        time_in_force=_TIF.get(order.tif, TimeInForce.DAY),
        quantity=Decimal(repr(float(order.totalQuantity))),
        filled_quantity=filled,
        average_fill_price=_number(trade.orderStatus.avgFillPrice) if filled else None,
        limit_price=_number(order.lmtPrice) if order.orderType in {"LMT", "STP LMT"} else None,
        stop_price=_number(order.auxPrice) if order.orderType in {"STP", "STP LMT"} else None,
        status=status,
        submitted_at=times[0],
        updated_at=times[-1],
        reason=_reason(trade, status),
    )


def position_from_ib(item: PortfolioItem | IbPosition, symbols: IbkrSymbols) -> Position:
    """A position from the portfolio (with prices) or the bare positions list."""
    contract = item.contract
    multiplier = Decimal(contract.multiplier) if contract.multiplier else Decimal(1)
    if isinstance(item, PortfolioItem):
        return Position(
            symbol=symbols.from_venue(contract.symbol, contract.secType),
            quantity=Decimal(repr(float(item.position))),
            average_price=(_number(item.averageCost) or Decimal(0)) / multiplier,
            market_price=_number(item.marketPrice),
            market_value=_number(item.marketValue),
            unrealized_pnl=_number(item.unrealizedPNL),
        )
    return Position(
        symbol=symbols.from_venue(contract.symbol, contract.secType),
        quantity=Decimal(repr(float(item.position))),
        average_price=(_number(item.avgCost) or Decimal(0)) / multiplier,
    )


def account_from_summary(values: Iterable[AccountValue], account: str) -> Account:
    """Cash, equity (net liquidation) and buying power from ``accountSummary``."""
    tags = {v.tag: v for v in values if v.account == account and v.currency not in {"", None}}

    def tag(name: str) -> Decimal:
        value = tags.get(name)
        return Decimal(value.value) if value else Decimal(0)

    currency = tags["NetLiquidation"].currency if "NetLiquidation" in tags else "USD"
    return Account(
        account_id=account,
        currency=currency,
        cash=tag("TotalCashValue"),
        equity=tag("NetLiquidation"),
        buying_power=tag("BuyingPower"),
    )
