"""Where the paper venue keeps its books: a port, so the account outlives every process.

The paper venue is a simulated *venue*, so it keeps its own books apart from the engine's
ledger (reconciliation compares the two). Its books are its orders: every fill a paper
order had is in the order's filled quantity and average price, so positions and cash are
derived from the stored orders and can never disagree with them. The DynamoDB
implementation (``kyperian.adapters.aws.paper_venue``) stores them in the ledger table,
so every engine task trades the same paper account, before and after a restart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from decimal import Decimal

from kyperian.domain.brokers import Order, OrderStatus


@dataclass(frozen=True)
class PaperSnapshot:
    """Everything the venue holds, read at once: starting cash (None before the first open),
    every order, and the last price of every symbol."""

    starting_cash: Decimal | None
    orders: tuple[Order, ...] = ()
    prices: dict[str, Decimal] = field(default_factory=dict)


class PaperVenueStore(ABC):
    """The paper account's orders, last prices and starting cash."""

    @abstractmethod
    def open(self, starting_cash: Decimal) -> Decimal:
        """The account's starting cash: ``starting_cash`` the first time, the stored one after."""

    @abstractmethod
    def snapshot(self) -> PaperSnapshot:
        """The whole account in one read (one query in DynamoDB)."""

    @abstractmethod
    def add(self, order: Order) -> None:
        """Store a new order. Raises ``InvalidOrderError`` if its client order id is taken."""

    @abstractmethod
    def replace(self, order: Order, expected: OrderStatus) -> bool:
        """Overwrite an order still in status ``expected``; False if it moved meanwhile."""

    @abstractmethod
    def find(self, client_order_id: str) -> Order | None:
        """An order by client order id."""

    @abstractmethod
    def orders(self) -> list[Order]:
        """Every order of the account."""

    @abstractmethod
    def set_price(self, symbol: str, price: Decimal) -> None:
        """Record the latest price of a symbol."""

    @abstractmethod
    def price(self, symbol: str) -> Decimal | None:
        """The latest price of a symbol, if one was ever seen."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the store cannot be reached."""
