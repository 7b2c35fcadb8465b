"""The broker contract: what the engine needs from any venue, and the data it exchanges.

The engine owns this interface and venues implement it (paper now; Alpaca, Interactive
Brokers and Schwab later, Schwab also serving the ``/broker/tda`` route since the TD
Ameritrade API was shut down). Venue quirks stay inside adapters: they return these
frozen models, never vendor dicts, and raise ``kyperian.domain.errors`` only.

Required methods are abstract, so a venue missing one fails at construction, not
mid-trade. Optional methods have defaults built on the required ones; a venue overrides
them when it has a native endpoint. What a venue can do is data (``caps``), checked
before an order leaves the engine.

=====================  ========  ===========================================================
method                 required  notes
=====================  ========  ===========================================================
account                yes       equity, cash, buying power
positions              yes       signed quantities (short < 0)
_submit                yes       called by ``submit_order`` after the capability check;
                                 never retried (a timeout may hide an accepted order):
                                 after a ``TemporaryError`` call ``find_order`` instead
get_order              yes       by venue order id
find_order             yes       by client order id (Alpaca ``client_order_id``, IBKR
                                 ``orderRef``, Schwab: tag on the order); reconciliation
cancel_order           yes
open_orders            yes
check                  yes       connectivity and credentials
position               no        default: filters ``positions``
close_position         no        default: market order for the opposite quantity
status                 no        default: account + positions + open orders
close                  no        default: nothing to release (IB: disconnect the Gateway)
=====================  ========  ===========================================================
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kyperian.domain.errors import InvalidOrderError
from kyperian.domain.models import IsoTime


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell: the change it makes to a signed position."""
        return 1 if self is OrderSide.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_LIMIT = "STOP_LIMIT"


class TimeInForce(StrEnum):
    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(StrEnum):
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        """True while the order can still fill or be cancelled."""
        return self in {OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}


class BrokerCapabilities(BaseModel):
    """What a venue supports. Defaults are the common denominator; venues override the rest.

    Alpaca: fractional, short selling, stop, stop-limit, bracket, replace, extended hours, crypto.
    Interactive Brokers: short selling, stop, stop-limit, extended hours, crypto (Paxos).
    Schwab: stop, stop-limit, extended hours; no fractions via the API (shorts and brackets
    are not wired: see docs/brokers.md).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    market_orders: bool = True
    limit_orders: bool = True
    stop_orders: bool = False
    stop_limit_orders: bool = False
    short_selling: bool = False
    fractional_quantity: bool = False
    bracket_orders: bool = False
    replace_orders: bool = False
    extended_hours: bool = False
    crypto: bool = False
    paper: bool = False
    """True when no real money moves."""

    def allows(self, order_type: OrderType) -> bool:
        """Whether an order of this type can be sent to the venue."""
        return {
            OrderType.MARKET: self.market_orders,
            OrderType.LIMIT: self.limit_orders,
            OrderType.STOP: self.stop_orders,
            OrderType.STOP_LIMIT: self.stop_limit_orders,
        }[order_type]


class OrderRequest(BaseModel):
    """An order the engine wants placed. ``client_order_id`` makes it traceable and unique."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_order_id: str = Field(min_length=1, max_length=48)
    symbol: str = Field(min_length=1)
    side: OrderSide
    quantity: Decimal = Field(gt=0)
    order_type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = Field(default=None, gt=0)
    stop_price: Decimal | None = Field(default=None, gt=0)
    reference_price: Decimal | None = Field(default=None, gt=0)
    """The price the decision was made at: paper fills there; live venues may use it as a collar."""
    decision_id: str | None = None
    take_profit: Decimal | None = Field(default=None, gt=0)
    """With ``stop_loss``: a bracket (the entry, then a limit exit here); venues need
    ``caps.bracket_orders``."""
    stop_loss: Decimal | None = Field(default=None, gt=0)
    """With ``take_profit``: the bracket's protective stop."""
    extended_hours: bool = False
    """May execute outside regular hours (venues need ``caps.extended_hours``)."""

    @property
    def is_bracket(self) -> bool:
        return self.take_profit is not None or self.stop_loss is not None

    @model_validator(mode="after")
    def _prices_match_type(self) -> OrderRequest:
        needs_limit = self.order_type in {OrderType.LIMIT, OrderType.STOP_LIMIT}
        needs_stop = self.order_type in {OrderType.STOP, OrderType.STOP_LIMIT}
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"{self.order_type} orders {'need' if needs_limit else 'take no'} limit_price"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"{self.order_type} orders {'need' if needs_stop else 'take no'} stop_price"
            )
        if self.take_profit is not None and self.stop_loss is not None:
            low, high = (
                (self.stop_loss, self.take_profit)
                if self.side is OrderSide.BUY
                else (self.take_profit, self.stop_loss)
            )
            if low >= high:
                raise ValueError(
                    "take_profit must be above stop_loss for a buy and below it for a sell"
                )
        return self


class Order(BaseModel):
    """A venue's view of an order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: OrderStatus
    submitted_at: IsoTime
    updated_at: IsoTime
    reason: str | None = None
    """Why the venue rejected, cancelled or expired the order."""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


class Fill(BaseModel):
    """One execution of (part of) an order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fill_id: str
    order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal
    price: Decimal
    commission: Decimal = Decimal(0)
    filled_at: IsoTime


class Position(BaseModel):
    """Holdings of one symbol; ``quantity`` is signed (short < 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal
    average_price: Decimal
    market_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None


class Account(BaseModel):
    """Money in the account, in its base currency."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str
    currency: str
    cash: Decimal
    equity: Decimal
    buying_power: Decimal


class BrokerStatus(BaseModel):
    """Everything the engine reconciles against at start-up and after a failed submit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: Account
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]
    generated_at: IsoTime


class Broker(ABC):
    """A trading venue. Subclasses set ``name`` and ``capability_overrides``."""

    name: ClassVar[str]
    capability_overrides: ClassVar[Mapping[str, bool]] = {}
    _class_caps: ClassVar[BrokerCapabilities] = BrokerCapabilities()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Validate the overrides once, at import: a misspelt capability fails loudly."""
        super().__init_subclass__(**kwargs)
        cls._class_caps = BrokerCapabilities(**cls.capability_overrides)

    @property
    def caps(self) -> BrokerCapabilities:
        """What this venue supports (the engine checks this, never ``isinstance``)."""
        return self._class_caps

    # --- required -------------------------------------------------------------------

    @abstractmethod
    def account(self) -> Account:
        """Cash, equity and buying power now."""

    @abstractmethod
    def positions(self) -> list[Position]:
        """Every open position."""

    @abstractmethod
    def _submit(self, request: OrderRequest) -> Order:
        """Place an order the capability check has accepted; the venue-specific part."""

    @abstractmethod
    def get_order(self, order_id: str) -> Order:
        """An order by venue id; raises ``InvalidOrderError`` if the venue does not know it."""

    @abstractmethod
    def find_order(self, client_order_id: str) -> Order | None:
        """An order by the engine's id, or None: how an uncertain submit is reconciled."""

    @abstractmethod
    def cancel_order(self, order_id: str) -> Order:
        """Cancel an open order; returns its final state."""

    @abstractmethod
    def open_orders(self) -> list[Order]:
        """Orders that can still fill."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the venue cannot be used now."""

    # --- shared logic -----------------------------------------------------------------

    def submit_order(self, request: OrderRequest) -> Order:
        """Place an order once; never retried here or by callers.

        Raises
        ------
        InvalidOrderError
            The venue cannot take this order (type, fractional quantity): do not retry.
        TemporaryError
            The outcome is unknown: reconcile with ``find_order``, do not resubmit blindly.
        """
        self._check_capabilities(request)
        return self._submit(request)

    def _check_capabilities(self, request: OrderRequest) -> None:
        caps = self.caps
        if not caps.allows(request.order_type):
            raise InvalidOrderError(f"{self.name} does not take {request.order_type} orders")
        if (
            not caps.fractional_quantity
            and request.quantity != request.quantity.to_integral_value()
        ):
            raise InvalidOrderError(f"{self.name} does not take fractional quantities")
        if request.is_bracket and not caps.bracket_orders:
            raise InvalidOrderError(f"{self.name} does not take bracket orders")
        if request.extended_hours and not caps.extended_hours:
            raise InvalidOrderError(f"{self.name} does not take extended-hours orders")

    # --- optional, with defaults ------------------------------------------------------

    def position(self, symbol: str) -> Position | None:
        """The position in one symbol, if any."""
        return next((p for p in self.positions() if p.symbol == symbol), None)

    def close_position(self, symbol: str, client_order_id: str) -> Order | None:
        """Flatten a symbol with a market order; None when there is nothing to close."""
        held = self.position(symbol)
        if held is None or held.quantity == 0:
            return None
        side = OrderSide.SELL if held.quantity > 0 else OrderSide.BUY
        request = OrderRequest(
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            quantity=abs(held.quantity),
            reference_price=held.market_price,
        )
        return self.submit_order(request)

    def close(self) -> None:  # noqa: B027 - optional hook with a do-nothing default
        """Release connections at shutdown; most venues hold none."""

    def status(self, now: datetime) -> BrokerStatus:
        """Account, positions and open orders together, for reconciliation."""
        return BrokerStatus(
            account=self.account(),
            positions=tuple(self.positions()),
            open_orders=tuple(self.open_orders()),
            generated_at=now,
        )
