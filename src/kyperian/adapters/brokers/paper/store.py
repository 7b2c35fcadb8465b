"""Where the paper venue keeps its books: a port, so the account outlives every process.

The paper venue is a simulated *venue*, so it keeps its own books apart from the engine's
ledger (reconciliation compares the two). Its books are one record (``PaperBooks``:
cash, holdings, last prices, a version) written in the same atomic step as the order
that changed them, so cash and holdings always equal the fills of the stored orders, and
a submit costs one read and one write whatever the account's history (none of its past
orders is read). The DynamoDB implementation (``kyperian.adapters.aws.paper_venue``)
stores both in the ledger table, so every engine task trades the same paper account,
before and after a restart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from kyperian.domain.brokers import Order, OrderStatus


@dataclass(frozen=True, slots=True)
class PaperHolding:
    """Signed quantity of one symbol and its average price."""

    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)


@dataclass(frozen=True)
class PaperBooks:
    """The paper account at one version: every fill so far is in its cash and holdings."""

    starting_cash: Decimal
    cash: Decimal
    holdings: Mapping[str, PaperHolding] = field(default_factory=dict)
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    version: int = 1


class PaperVenueStore(ABC):
    """The paper account's books and orders."""

    @abstractmethod
    def open(self, starting_cash: Decimal) -> PaperBooks:
        """The books: opened with ``starting_cash`` the first time, the stored ones after."""

    @abstractmethod
    def books(self) -> PaperBooks | None:
        """The books as stored (one strongly consistent read), None before the first open."""

    @abstractmethod
    def commit(
        self,
        books: PaperBooks,
        new: Order | None = None,
        replaced: tuple[Order, OrderStatus] | None = None,
    ) -> bool:
        """Write ``books`` (over version ``books.version - 1``) with the order that moved them.

        ``new`` is stored only if its client order id is free, ``replaced`` (the order and
        the status it must still have) only over that status. All or nothing: False when
        the books or the replaced order moved meanwhile (read again and retry). Raises
        ``InvalidOrderError`` when ``new``'s client order id is taken.
        """

    @abstractmethod
    def replace(self, order: Order, expected: OrderStatus) -> bool:
        """Overwrite an order still in status ``expected`` (no fill); False if it moved."""

    @abstractmethod
    def find(self, client_order_id: str) -> Order | None:
        """An order by client order id."""

    @abstractmethod
    def orders(self) -> list[Order]:
        """Every order of the account (reads the whole history: off the order path)."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the store cannot be reached."""
