"""The book of one account: cash, positions and open orders, and the arithmetic on them.

Positions change only by fills (``apply_fill``), cash only by fills' cash changes, so the
book always equals the sum of the fills the ledger holds: the ledger adapter writes a
fill, its position and the cash together in one transaction. Exposure counts open orders
too (intents, pending approvals, submitted and resting orders): an order on its way is
risk already taken, whichever task placed it. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kyperian.domain.brokers import Account, Position
from kyperian.domain.models import IsoTime
from kyperian.execution.orders import PRICE_STEP, AccountKey, LedgerFill, LedgerOrder


class LedgerAccount(BaseModel):
    """Money of one account in its currency, and whether trading on it is halted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: AccountKey
    currency: str = "USD"
    starting_cash: Decimal
    cash: Decimal
    realized_pnl: Decimal = Decimal(0)
    halted: bool = False
    halt_reason: str | None = None
    opened_at: IsoTime


class LedgerPosition(BaseModel):
    """Holdings of one symbol; ``quantity`` signed (short < 0); ``version`` guards writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    last_price: Decimal | None = None
    version: int = Field(default=0, ge=0)
    """0 for a position never written."""

    def mark(self, price: Decimal | None = None) -> Decimal:
        """The price the position is valued at: given, else last traded, else average."""
        return price or self.last_price or self.average_price


def apply_fill(position: LedgerPosition, fill: LedgerFill) -> LedgerPosition:
    """The position after one fill: average up on adding, realize on reducing, reset on a flip."""
    before = position.quantity
    signed = fill.signed_quantity
    after = before + signed
    average = position.average_price
    realized = position.realized_pnl
    if before == 0 or (before > 0) == (signed > 0):
        average = ((abs(before) * average + abs(signed) * fill.price) / abs(after)).quantize(
            PRICE_STEP
        )
    else:
        closed = min(abs(before), abs(signed))
        direction = 1 if before > 0 else -1
        realized += (fill.price - average) * closed * direction
        if after == 0:
            average = Decimal(0)
        elif (after > 0) != (before > 0):
            average = fill.price
    return position.model_copy(
        update={
            "quantity": after,
            "average_price": average,
            "realized_pnl": realized - fill.commission,
            "last_price": fill.price,
            "version": position.version + 1,
        }
    )


def fold_fills(fills: Iterable[LedgerFill]) -> dict[str, LedgerPosition]:
    """Positions rebuilt from fills alone (what the ledger's positions must always equal)."""
    positions: dict[str, LedgerPosition] = {}
    for fill in fills:
        held = positions.get(fill.symbol, LedgerPosition(symbol=fill.symbol))
        positions[fill.symbol] = apply_fill(held, fill)
    return positions


class Book(BaseModel):
    """One account's state as the ledger has it, read together."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: LedgerAccount
    positions: tuple[LedgerPosition, ...] = ()
    open_orders: tuple[LedgerOrder, ...] = ()

    def position(self, symbol: str) -> LedgerPosition | None:
        return next((p for p in self.positions if p.symbol == symbol), None)

    def equity(self, marks: Mapping[str, Decimal] | None = None) -> Decimal:
        """Cash plus every position at its mark (the given price, else the last fill)."""
        marks = marks or {}
        value = sum((p.quantity * p.mark(marks.get(p.symbol)) for p in self.positions), Decimal(0))
        return self.account.cash + value

    def committed(self, symbol: str) -> Decimal:
        """Signed quantity held plus what open orders may still add."""
        held = self.position(symbol)
        pending = sum(
            (o.signed_remaining for o in self.open_orders if o.symbol == symbol), Decimal(0)
        )
        return (held.quantity if held else Decimal(0)) + pending

    def exposure(self, symbol: str, price: float | None) -> float:
        """Signed committed value / equity; a non-positive equity counts as fully exposed."""
        committed = self.committed(symbol)
        if committed == 0:
            return 0.0
        held = self.position(symbol)
        given = (
            Decimal(repr(price))
            if price is not None and math.isfinite(price) and price > 0
            else None
        )
        mark = given or (held.mark() if held else None) or self._order_price(symbol)
        if mark is None or mark <= 0:
            return math.copysign(1.0, float(committed))
        equity = self.equity({symbol: mark})
        if equity <= 0:
            return math.copysign(1.0, float(committed))
        return float(committed * mark / equity)

    def gross_exposure(self, marks: Mapping[str, Decimal] | None = None) -> float:
        """Sum over symbols of |committed quantity| x mark / equity (open orders included)."""
        marks = marks or {}
        symbols = {p.symbol for p in self.positions} | {o.symbol for o in self.open_orders}
        gross = Decimal(0)
        for symbol in symbols:
            held = self.position(symbol)
            mark = marks.get(symbol) or (held.mark() if held else None) or self._order_price(symbol)
            gross += abs(self.committed(symbol)) * (mark or Decimal(0))
        equity = self.equity(marks)
        return float(gross / equity) if equity > 0 else (1.0 if gross else 0.0)

    def _order_price(self, symbol: str) -> Decimal | None:
        return next(
            (
                o.reference_price
                for o in self.open_orders
                if o.symbol == symbol and o.reference_price
            ),
            None,
        )

    def as_account(self) -> Account:
        """The book in the broker contract's shape (what order sizing reads)."""
        equity = self.equity()
        return Account(
            account_id=self.account.key.account_id,
            currency=self.account.currency,
            cash=self.account.cash,
            equity=equity,
            buying_power=max(Decimal(0), equity),
        )

    def as_position(self, symbol: str) -> Position | None:
        held = self.position(symbol)
        if held is None or held.quantity == 0:
            return None
        mark = held.mark()
        return Position(
            symbol=symbol,
            quantity=held.quantity,
            average_price=held.average_price,
            market_price=mark,
            market_value=held.quantity * mark,
            unrealized_pnl=held.quantity * (mark - held.average_price),
        )
