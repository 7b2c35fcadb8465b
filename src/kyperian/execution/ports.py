"""What the execution core needs from storage: the ledger, shared by every engine task.

One implementation stores it in DynamoDB (``kyperian.adapters.aws.ledger``); the core
never sees a table. Every write is conditional: creating an order fails if its client
order id exists, saving an order fails if its version moved, booking a fill fails if the
fill is already booked. Those failures are the exactly-once guarantee, so they are
errors of their own (``OrderExists``, ``StaleRecord``), never swallowed by an adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from kyperian.domain.errors import KyperianError
from kyperian.execution.book import Book, LedgerAccount, LedgerPosition
from kyperian.execution.orders import AccountKey, LedgerFill, LedgerOrder, OrderState


class OrderExists(KyperianError):
    """An order with this client order id is already recorded: read it, never write again.

    ``existing`` is the recorded order when the failed write could return it (else None).
    """

    def __init__(self, client_order_id: str, existing: LedgerOrder | None = None) -> None:
        super().__init__(f"order {client_order_id} is already recorded")
        self.client_order_id = client_order_id
        self.existing = existing


class StaleRecord(KyperianError):
    """Someone else changed the record since it was read: read it again and decide again."""


class AccountHalted(KyperianError):
    """The account's kill switch is on: the intent was not written."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(f"trading halted: {reason or 'kill switch'}")
        self.reason = reason


class RateLimited(KyperianError):
    """The minute's order counter is full: the intent was not written."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the orders of this UTC minute reached the limit of {limit}")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RateSlot:
    """Take one of the ``limit`` order slots of UTC ``minute`` together with an intent.

    ``stale`` names earlier minutes the caller saw on the counter: they are dropped in
    the same write, so the counter holds one minute or a few, never a history.
    """

    minute: str
    limit: int
    stale: tuple[str, ...] = ()


class Ledger(ABC):
    """Orders, fills, positions and cash per account, with a kill switch per account."""

    @abstractmethod
    def open_account(
        self, key: AccountKey, cash: Decimal, currency: str, now: datetime
    ) -> LedgerAccount:
        """The account, created with ``cash`` if it does not exist yet (idempotent)."""

    @abstractmethod
    def account(self, key: AccountKey) -> LedgerAccount | None:
        """The account (strongly consistent), or None before it was opened."""

    @abstractmethod
    def book(self, key: AccountKey) -> Book:
        """Account, positions and open orders together. Raises ``KyperianError`` if unopened."""

    @abstractmethod
    def create_order(
        self, order: LedgerOrder, slot: RateSlot | None = None, unless_halted: bool = False
    ) -> None:
        """Record a new order, taking ``slot`` on the minute's order counter in the same write.

        With ``unless_halted`` the write also requires the account's kill switch off at
        that moment, so no order recorded after a halt can reach the venue. Raises
        ``OrderExists`` if its client order id is taken, ``AccountHalted`` if the account
        is halted, ``RateLimited`` if the slot's minute is full (nothing is written).
        """

    @abstractmethod
    def order(self, key: AccountKey, client_order_id: str) -> LedgerOrder | None:
        """One order (strongly consistent)."""

    @abstractmethod
    def orders(
        self,
        key: AccountKey,
        symbol: str | None = None,
        states: Sequence[OrderState] | None = None,
        limit: int = 100,
    ) -> list[LedgerOrder]:
        """Orders of an account, newest client order id last, filtered by symbol and state."""

    @abstractmethod
    def save_order(self, order: LedgerOrder, unless_halted: bool = False) -> None:
        """Write ``order`` over version ``order.version - 1``. Raises ``StaleRecord``.

        With ``unless_halted`` the write also requires the account's kill switch off at
        that moment (one transaction), else raises ``AccountHalted`` and writes nothing.
        """

    @abstractmethod
    def record(
        self, order: LedgerOrder, fills: Sequence[LedgerFill], book: Book | None = None
    ) -> None:
        """Save the order and book its fills, their positions and cash in one transaction.

        ``book``, a recent read, spares reading the positions again: the write still
        holds each position to the version it was read at. Raises ``StaleRecord`` when
        the order or a position moved meanwhile (nothing is written; read again, retry).
        """

    @abstractmethod
    def fills(self, key: AccountKey) -> list[LedgerFill]:
        """Every fill of an account, oldest first."""

    @abstractmethod
    def positions(self, key: AccountKey) -> list[LedgerPosition]:
        """Every position row of an account (strongly consistent)."""

    @abstractmethod
    def set_halt(
        self, key: AccountKey, halted: bool, reason: str | None, at: datetime | None = None
    ) -> None:
        """Set (at ``at``) or clear the account's kill switch."""

    @abstractmethod
    def check(self) -> None:
        """Raise ``TemporaryError``/``OperationalError`` if the ledger cannot be reached."""
