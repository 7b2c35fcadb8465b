"""The paper venue's execution: the live broker interface over a simulated account.

Market orders fill at once at the order's reference price (or the last known price),
less any configured slippage; limit orders fill when marketable and otherwise rest until
``mark`` moves the price through them or they are cancelled. The account lives in a
``PaperVenueStore`` (DynamoDB in the service), not in this object: its books (cash,
signed holdings and last prices, in ``Decimal``) are written in one atomic step with the
order that moved them, over the version they were read at, so every engine task sees
one paper account and a restart changes nothing. A submit reads the books once and
writes once; the books a task wrote last are kept and tried first, the version check
turning a stale copy into a re-read, so a task trading alone writes without reading. A
client order id is accepted once (the store's conditional write), as live venues do.
Nothing here touches the network, and the engine cannot tell this venue from a live one
except through ``caps.paper``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import ClassVar, Final

from kyperian.adapters.brokers.paper.config import PaperBrokerConfig
from kyperian.adapters.brokers.paper.store import PaperBooks, PaperHolding, PaperVenueStore
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
from kyperian.domain.errors import InvalidOrderError, TemporaryError

_PRICE_STEP = Decimal("0.000001")
_BPS = Decimal(10000)
_ATTEMPTS: Final = 5


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


@dataclass
class _View:
    """The books being changed by one operation: cash, holdings, prices."""

    books: PaperBooks
    cash: Decimal
    holdings: dict[str, _Holding]
    prices: dict[str, Decimal]

    @classmethod
    def of(cls, books: PaperBooks) -> _View:
        holdings = {s: _Holding(h.quantity, h.average_price) for s, h in books.holdings.items()}
        return cls(books, books.cash, holdings, dict(books.prices))

    def changed(self) -> PaperBooks:
        """The books after this operation, one version on."""
        return PaperBooks(
            starting_cash=self.books.starting_cash,
            cash=self.cash,
            holdings={
                s: PaperHolding(h.quantity, h.average_price)
                for s, h in sorted(self.holdings.items())
                if h.quantity != 0
            },
            prices=dict(sorted(self.prices.items())),
            version=self.books.version + 1,
        )

    def mark(self, symbol: str) -> Decimal:
        holding = self.holdings.get(symbol, _Holding())
        return self.prices.get(symbol) or holding.average_price

    def equity(self) -> Decimal:
        value = sum((h.quantity * self.mark(s) for s, h in self.holdings.items()), Decimal(0))
        return self.cash + value

    def gross(self, without: str | None = None) -> Decimal:
        return sum(
            (abs(h.quantity) * self.mark(s) for s, h in self.holdings.items() if s != without),
            Decimal(0),
        )

    def position(self, symbol: str) -> Position:
        holding = self.holdings[symbol]
        mark = self.mark(symbol)
        return Position(
            symbol=symbol,
            quantity=holding.quantity,
            average_price=holding.average_price,
            market_price=mark,
            market_value=holding.quantity * mark,
            unrealized_pnl=holding.quantity * (mark - holding.average_price),
        )


class PaperBroker(Broker):
    """A simulated venue with one account in ``config.currency``, kept in ``store``."""

    name: ClassVar[str] = "paper"
    capability_overrides: ClassVar[dict[str, bool]] = {
        "paper": True,
        "short_selling": True,
        "fractional_quantity": True,
    }

    def __init__(
        self,
        store: PaperVenueStore,
        config: PaperBrokerConfig | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.config = config or PaperBrokerConfig()
        self.store = store
        self._clock = clock
        self._lock = threading.RLock()
        self._last: PaperBooks | None = None

    @property
    def caps(self) -> BrokerCapabilities:
        """The class defaults, narrowed by the configuration (shorting, fractions)."""
        return self._class_caps.model_copy(
            update={
                "short_selling": self.config.allow_short,
                "fractional_quantity": self.config.fractional,
            }
        )

    # --- the books ----------------------------------------------------------------------

    def _books(self, fresh: bool = True) -> PaperBooks:
        """The stored books (opened on first use); ``fresh=False`` may answer the last written."""
        if not fresh and self._last is not None:
            return self._last
        books = self.store.books() or self.store.open(self.config.starting_cash)
        if books.version == 0:
            books = self._replayed(books)
        self._last = books
        return books

    def _replayed(self, books: PaperBooks) -> PaperBooks:
        """Books stored before they were kept (version 0): rebuilt once from the orders."""
        view = _View.of(books)
        filled = sorted(
            (o for o in self.store.orders() if o.filled_quantity > 0),
            key=lambda o: (o.updated_at, o.order_id),
        )
        for order in filled:
            price = order.average_fill_price or Decimal(0)
            signed = order.side.sign * order.filled_quantity
            view.holdings.setdefault(order.symbol, _Holding()).apply(signed, price)
            view.cash -= signed * price + self.config.commission_per_order
        self._commit(view)  # lost to another task's rebuild: theirs is the same
        return self.store.books() or view.changed()

    def _view(self) -> _View:
        return _View.of(self._books())

    def _commit(
        self,
        view: _View,
        new: Order | None = None,
        replaced: tuple[Order, OrderStatus] | None = None,
    ) -> bool:
        books = view.changed()
        if not self.store.commit(books, new=new, replaced=replaced):
            self._last = None
            return False
        self._last = books
        return True

    def account(self) -> Account:
        view = self._view()
        equity = view.equity()
        return Account(
            account_id=self.config.account_id,
            currency=self.config.currency,
            cash=view.cash,
            equity=equity,
            buying_power=max(Decimal(0), equity * self.config.max_leverage - view.gross()),
        )

    def positions(self) -> list[Position]:
        view = self._view()
        return [view.position(s) for s, h in sorted(view.holdings.items()) if h.quantity != 0]

    def fills(self) -> list[Fill]:
        """Every simulated execution, oldest first (paper orders fill whole, once)."""
        filled = sorted(
            (o for o in self.store.orders() if o.filled_quantity > 0),
            key=lambda o: (o.updated_at, o.order_id),
        )
        return [
            Fill(
                fill_id=f"{order.order_id}-1",
                order_id=order.order_id,
                symbol=order.symbol,
                side=order.side,
                quantity=order.filled_quantity,
                price=order.average_fill_price or Decimal(0),
                commission=self.config.commission_per_order,
                filled_at=order.updated_at,
            )
            for order in filled
        ]

    # --- orders -------------------------------------------------------------------------

    def _submit(self, request: OrderRequest) -> Order:
        with self._lock:
            for attempt in range(_ATTEMPTS):
                view = _View.of(self._books(fresh=attempt > 0))
                if request.reference_price is not None:
                    view.prices[request.symbol] = request.reference_price
                order = self._accept(request, view)
                filled, problem = self._try_fill(order, view)
                if self._commit(view, new=filled):
                    if problem:
                        raise InvalidOrderError(problem)
                    return filled
            raise TemporaryError(f"paper account kept moving; {request.client_order_id} not sent")

    def _accept(self, request: OrderRequest, view: _View) -> Order:
        now = self._clock()
        if request.order_type is OrderType.MARKET and request.symbol not in view.prices:
            raise InvalidOrderError(f"no price known for {request.symbol}: nothing to fill at")
        return Order(
            order_id=f"paper-{request.client_order_id}",
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

    def _fill_price(self, order: Order, view: _View) -> Decimal | None:
        """Where the order executes now, or None if it is not marketable."""
        price = view.prices.get(order.symbol)
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

    def _try_fill(self, order: Order, view: _View) -> tuple[Order, str | None]:
        """The order after trying to fill it now, and the reason if it was rejected."""
        price = self._fill_price(order, view)
        if price is None:
            if order.time_in_force in {TimeInForce.IOC, TimeInForce.FOK}:
                return self._close(order, OrderStatus.CANCELED, "not marketable"), None
            return order, None
        problem = self._risk_problem(order, price, view)
        if problem:
            return self._close(order, OrderStatus.REJECTED, problem), problem
        return self._execute(order, price, view), None

    def _risk_problem(self, order: Order, price: Decimal, view: _View) -> str | None:
        """Why the account cannot take this fill (shorting, leverage), or None."""
        holding = view.holdings.get(order.symbol, _Holding())
        after = holding.quantity + order.side.sign * order.remaining
        if after < 0 and not self.config.allow_short:
            return f"selling {order.remaining} {order.symbol} would open a short position"
        gross = view.gross(without=order.symbol) + abs(after) * price
        limit = (view.equity() - self.config.commission_per_order) * self.config.max_leverage
        if gross > limit:
            return f"insufficient buying power: gross exposure {gross:.2f} over {limit:.2f}"
        return None

    def _execute(self, order: Order, price: Decimal, view: _View) -> Order:
        view.prices[order.symbol] = price
        signed = order.side.sign * order.quantity
        view.holdings.setdefault(order.symbol, _Holding()).apply(signed, price)
        view.cash -= signed * price + self.config.commission_per_order
        return order.model_copy(
            update={
                "filled_quantity": order.quantity,
                "average_fill_price": price,
                "status": OrderStatus.FILLED,
                "updated_at": self._clock(),
            }
        )

    def _close(self, order: Order, status: OrderStatus, reason: str) -> Order:
        return order.model_copy(
            update={"status": status, "reason": reason, "updated_at": self._clock()}
        )

    def mark(self, symbol: str, price: Decimal) -> list[Order]:
        """Move a symbol's price and fill the resting limit orders it makes marketable."""
        with self._lock:
            resting = [o for o in self.store.orders() if o.symbol == symbol and o.status.is_open]
            moved = [o for o in (self._fill_resting(o, price) for o in resting) if o is not None]
            if not moved:
                self._set_price(symbol, price)
            return [o for o in moved if o.status is OrderStatus.FILLED]

    def _fill_resting(self, order: Order, price: Decimal) -> Order | None:
        """The resting order after ``price`` (written with the books), None if it stays."""
        for attempt in range(_ATTEMPTS):
            view = _View.of(self._books(fresh=attempt > 0))
            view.prices[order.symbol] = price
            after, _ = self._try_fill(order, view)
            if after == order:
                return None
            if self._commit(view, replaced=(after, order.status)):
                return after
            current = self.store.find(order.client_order_id)
            if current is None or current.status is not order.status:
                return None  # filled or cancelled meanwhile by another task
        raise TemporaryError(f"paper account kept moving; {order.client_order_id} not marked")

    def _set_price(self, symbol: str, price: Decimal) -> None:
        for attempt in range(_ATTEMPTS):
            view = _View.of(self._books(fresh=attempt > 0))
            view.prices[symbol] = price
            if self._commit(view):
                return
        raise TemporaryError(f"paper account kept moving; {symbol} price not stored")

    def get_order(self, order_id: str) -> Order:
        order = self.store.find(order_id.removeprefix("paper-"))
        if order is None or order.order_id != order_id:
            raise InvalidOrderError(f"unknown order {order_id}")
        return order

    def find_order(self, client_order_id: str) -> Order | None:
        return self.store.find(client_order_id)

    def cancel_order(self, order_id: str) -> Order:
        with self._lock:
            order = self.get_order(order_id)
            if not order.status.is_open:
                raise InvalidOrderError(f"order {order_id} is {order.status}, not open")
            closed = self._close(order, OrderStatus.CANCELED, "cancelled by request")
            if not self.store.replace(closed, order.status):
                raise InvalidOrderError(f"order {order_id} changed meanwhile; read it again")
            return closed

    def open_orders(self) -> list[Order]:
        return [o for o in self.store.orders() if o.status.is_open]

    def check(self) -> None:
        """The simulated venue is reachable when its store is."""
        self.store.check()
