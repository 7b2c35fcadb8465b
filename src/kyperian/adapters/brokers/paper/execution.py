"""The paper venue's execution: the live broker interface over a simulated account.

Market orders fill at once at the order's reference price (or the last known price),
less any configured slippage; limit orders fill when marketable and otherwise rest until
``mark`` moves the price through them or they are cancelled. Cash, signed positions and
average prices are kept in ``Decimal``. Nothing here touches the network, and the engine
cannot tell this venue from a live one except through ``caps.paper``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar

from kyperian.adapters.brokers.paper.config import PaperBrokerConfig
from kyperian.adapters.brokers.paper.data import PaperMarket
from kyperian.domain.brokers import (
    Account,
    Broker,
    BrokerCapabilities,
    Fill,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from kyperian.domain.errors import InvalidOrderError

_PRICE_STEP = Decimal("0.000001")
_BPS = Decimal(10000)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Holding:
    """Mutable bookkeeping of one symbol; published as an immutable ``Position``."""

    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)

    def apply(self, signed_quantity: Decimal, price: Decimal) -> None:
        """Add a fill: average up when adding, keep the average when reducing, reset on a flip."""
        before = self.quantity
        after = before + signed_quantity
        if before == 0 or (before > 0) == (signed_quantity > 0):
            self.average_price = (
                abs(before) * self.average_price + abs(signed_quantity) * price
            ) / abs(after)
        elif after != 0 and (after > 0) != (before > 0):
            self.average_price = price
        elif after == 0:
            self.average_price = Decimal(0)
        self.quantity = after


class PaperBroker(Broker):
    """A simulated venue with one account in ``config.currency``."""

    name: ClassVar[str] = "paper"
    capability_overrides: ClassVar[dict[str, bool]] = {
        "paper": True,
        "short_selling": True,
        "fractional_quantity": True,
    }

    def __init__(
        self,
        config: PaperBrokerConfig | None = None,
        market: PaperMarket | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self.market = market or PaperMarket()
        self._clock = clock
        self._cash = self.config.starting_cash
        self._holdings: dict[str, _Holding] = {}
        self._orders: dict[str, Order] = {}
        self._by_client: dict[str, str] = {}
        self._fills: list[Fill] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    @property
    def caps(self) -> BrokerCapabilities:
        """The class defaults, narrowed by the configuration (shorting, fractions)."""
        return self._class_caps.model_copy(
            update={
                "short_selling": self.config.allow_short,
                "fractional_quantity": self.config.fractional,
            }
        )

    # --- account and positions ----------------------------------------------------------

    def account(self) -> Account:
        with self._lock:
            equity = self._equity()
            gross = sum(
                (abs(h.quantity) * self._mark(s, h) for s, h in self._holdings.items()), Decimal(0)
            )
            return Account(
                account_id=self.config.account_id,
                currency=self.config.currency,
                cash=self._cash,
                equity=equity,
                buying_power=max(Decimal(0), equity * self.config.max_leverage - gross),
            )

    def positions(self) -> list[Position]:
        with self._lock:
            return [
                self._position(s, h) for s, h in sorted(self._holdings.items()) if h.quantity != 0
            ]

    def fills(self) -> list[Fill]:
        """Every simulated execution, oldest first (paper only: for tests and the API)."""
        with self._lock:
            return list(self._fills)

    def _mark(self, symbol: str, holding: _Holding) -> Decimal:
        return self.market.price(symbol) or holding.average_price

    def _equity(self) -> Decimal:
        value = sum((h.quantity * self._mark(s, h) for s, h in self._holdings.items()), Decimal(0))
        return self._cash + value

    def _position(self, symbol: str, holding: _Holding) -> Position:
        mark = self._mark(symbol, holding)
        return Position(
            symbol=symbol,
            quantity=holding.quantity,
            average_price=holding.average_price,
            market_price=mark,
            market_value=holding.quantity * mark,
            unrealized_pnl=holding.quantity * (mark - holding.average_price),
        )

    # --- orders -------------------------------------------------------------------------

    def _submit(self, request: OrderRequest) -> Order:
        with self._lock:
            if request.client_order_id in self._by_client:
                raise InvalidOrderError(f"client_order_id {request.client_order_id} already used")
            if request.reference_price is not None:
                self.market.mark(request.symbol, request.reference_price)
            order = self._accept(request)
            return self._try_fill(order)

    def _accept(self, request: OrderRequest) -> Order:
        now = self._clock()
        order = Order(
            order_id=f"paper-{next(self._ids):08d}",
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            limit_price=request.limit_price,
            status=OrderStatus.ACCEPTED,
            submitted_at=now,
            updated_at=now,
        )
        if order.order_type is OrderType.MARKET and self.market.price(order.symbol) is None:
            raise InvalidOrderError(f"no price known for {order.symbol}: nothing to fill at")
        self._store(order)
        return order

    def _store(self, order: Order) -> Order:
        self._orders[order.order_id] = order
        self._by_client[order.client_order_id] = order.order_id
        return order

    def _fill_price(self, order: Order) -> Decimal | None:
        """Where the order executes now, or None if it is not marketable."""
        price = self.market.price(order.symbol)
        if price is None:
            return None
        if order.order_type is OrderType.MARKET:
            slip = price * self.config.slippage_bps / _BPS
            return (price + order.side.sign * slip).quantize(_PRICE_STEP)
        limit = order.limit_price
        if limit is None:
            return None
        if order.side is OrderSide.BUY:
            return min(price, limit) if price <= limit else None
        return max(price, limit) if price >= limit else None

    def _try_fill(self, order: Order) -> Order:
        price = self._fill_price(order)
        if price is None:
            if order.time_in_force in {TimeInForce.IOC, TimeInForce.FOK}:
                return self._close(order, OrderStatus.CANCELED, "not marketable")
            return order
        problem = self._risk_problem(order, price)
        if problem:
            self._close(order, OrderStatus.REJECTED, problem)
            raise InvalidOrderError(problem)
        return self._execute(order, price)

    def _risk_problem(self, order: Order, price: Decimal) -> str | None:
        """Why the account cannot take this fill (shorting, leverage), or None."""
        holding = self._holdings.get(order.symbol, _Holding())
        after = holding.quantity + order.side.sign * order.remaining
        if after < 0 and not self.config.allow_short:
            return f"selling {order.remaining} {order.symbol} would open a short position"
        gross = sum(
            (
                abs(h.quantity) * self._mark(s, h)
                for s, h in self._holdings.items()
                if s != order.symbol
            ),
            Decimal(0),
        )
        gross += abs(after) * price
        limit = (self._equity() - self.config.commission_per_order) * self.config.max_leverage
        if gross > limit:
            return f"insufficient buying power: gross exposure {gross:.2f} over {limit:.2f}"
        return None

    def _execute(self, order: Order, price: Decimal) -> Order:
        quantity = order.remaining
        now = self._clock()
        self._holdings.setdefault(order.symbol, _Holding()).apply(order.side.sign * quantity, price)
        self._cash -= order.side.sign * quantity * price + self.config.commission_per_order
        self.market.mark(order.symbol, price)
        self._fills.append(
            Fill(
                fill_id=f"{order.order_id}-{len(self._fills) + 1}",
                order_id=order.order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=quantity,
                price=price,
                commission=self.config.commission_per_order,
                filled_at=now,
            )
        )
        filled = order.model_copy(
            update={
                "filled_quantity": order.quantity,
                "average_fill_price": price,
                "status": OrderStatus.FILLED,
                "updated_at": now,
            }
        )
        return self._store(filled)

    def _close(self, order: Order, status: OrderStatus, reason: str) -> Order:
        closed = order.model_copy(
            update={"status": status, "reason": reason, "updated_at": self._clock()}
        )
        return self._store(closed)

    def mark(self, symbol: str, price: Decimal) -> list[Order]:
        """Move a symbol's price and fill the resting limit orders it makes marketable."""
        with self._lock:
            self.market.mark(symbol, price)
            resting = [o for o in self._orders.values() if o.symbol == symbol and o.status.is_open]
            filled: list[Order] = []
            for order in resting:
                try:
                    filled.append(self._try_fill(order))
                except InvalidOrderError:
                    continue  # rejected and recorded with its reason by _try_fill
            return [o for o in filled if o.status is OrderStatus.FILLED]

    def get_order(self, order_id: str) -> Order:
        with self._lock:
            order = self._orders.get(order_id)
        if order is None:
            raise InvalidOrderError(f"unknown order {order_id}")
        return order

    def find_order(self, client_order_id: str) -> Order | None:
        with self._lock:
            order_id = self._by_client.get(client_order_id)
            return self._orders[order_id] if order_id else None

    def cancel_order(self, order_id: str) -> Order:
        with self._lock:
            order = self.get_order(order_id)
            if not order.status.is_open:
                raise InvalidOrderError(f"order {order_id} is {order.status}, not open")
            return self._close(order, OrderStatus.CANCELED, "cancelled by request")

    def open_orders(self) -> list[Order]:
        with self._lock:
            return [o for o in self._orders.values() if o.status.is_open]

    def check(self) -> None:
        """The simulated venue is always reachable."""
