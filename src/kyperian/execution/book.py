"""The book of one account: cash, positions and open orders, and the arithmetic on them.

Positions change only by fills (``apply_fill``), cash only by fills' cash changes, so the
book always equals the sum of the fills the ledger holds: the ledger adapter writes a
fill, its position and the cash together in one transaction. Exposure counts open orders
too (intents, pending approvals, submitted and resting orders): an order on its way is
risk already taken, whichever task placed it.

The book also carries what the limits on the whole book need, written with the fills
and the intents rather than recomputed from history, so one read of the book answers
every limit: each position keeps its latest stop-out and its quantity and mark at the
start of its last trading day (UTC), the account the cash its fills moved per UTC day,
and a counter the orders of the current UTC minute. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from kyperian.domain.brokers import Account, Position
from kyperian.domain.models import IsoTime
from kyperian.execution.orders import PRICE_STEP, AccountKey, LedgerFill, LedgerOrder


def utc_day(at: datetime) -> str:
    """``at``'s UTC date, ``YYYY-MM-DD`` (the daily-loss limit's day)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def utc_minute(at: datetime) -> str:
    """``at``'s UTC minute, ``YYYY-MM-DDTHH:MM`` (the order-rate limit's window)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


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
    halted_at: IsoTime | None = None
    """When the kill switch was set (None while trading)."""
    opened_at: IsoTime
    day_cash: dict[str, Decimal] = Field(default_factory=dict)
    """Per UTC day (``YYYY-MM-DD``): the sum of that day's fills' cash changes."""


class LedgerPosition(BaseModel):
    """Holdings of one symbol; ``quantity`` signed (short < 0); ``version`` guards writes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    quantity: Decimal = Decimal(0)
    average_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    last_price: Decimal | None = None
    last_stop_out_at: IsoTime | None = None
    """When a fill last closed this position at a loss (commission included)."""
    day: str | None = None
    """UTC day (``YYYY-MM-DD``) of the latest fill."""
    day_open_quantity: Decimal = Decimal(0)
    """Quantity held when ``day`` began (before its first fill)."""
    day_open_price: Decimal = Decimal(0)
    """The mark (last fill's price, else average) when ``day`` began."""
    version: int = Field(default=0, ge=0)
    """0 for a position never written."""

    def mark(self, price: Decimal | None = None) -> Decimal:
        """The price the position is valued at: given, else last traded, else average."""
        return price or self.last_price or self.average_price

    def opening_value(self, day: str) -> Decimal:
        """What the position was worth at the start of UTC ``day``, at its marks then."""
        if self.day is not None and self.day >= day:
            return self.day_open_quantity * self.day_open_price
        return self.quantity * self.mark()


def apply_fill(position: LedgerPosition, fill: LedgerFill) -> LedgerPosition:
    """The position after one fill: average up on adding, realize on reducing, reset on a flip.

    A fill that closes the position (to zero or through it) at a loss, commission
    included, is a stop-out: its time is kept. The first fill of a later UTC day keeps
    what the position was at that day's start (quantity and mark).
    """
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
    realized -= fill.commission
    closed_out = before != 0 and (after == 0 or (after > 0) != (before > 0))
    update: dict[str, object] = {
        "quantity": after,
        "average_price": average,
        "realized_pnl": realized,
        "last_price": fill.price,
        "version": position.version + 1,
    }
    if closed_out and realized < position.realized_pnl:
        update["last_stop_out_at"] = max(
            fill.filled_at, position.last_stop_out_at or fill.filled_at
        )
    day = utc_day(fill.filled_at)
    if position.day is None or day > position.day:
        update |= {"day": day, "day_open_quantity": before, "day_open_price": position.mark()}
    return position.model_copy(update=update)


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
    order_counts: dict[str, int] = Field(default_factory=dict)
    """Orders recorded per UTC minute (``YYYY-MM-DDTHH:MM``): the current one, maybe stale ones."""

    def position(self, symbol: str) -> LedgerPosition | None:
        return next((p for p in self.positions if p.symbol == symbol), None)

    def orders_in_minute(self, now: datetime) -> int:
        """Orders recorded in ``now``'s UTC minute (the order-rate counter)."""
        return self.order_counts.get(utc_minute(now), 0)

    def opening_equity(self, day: str) -> Decimal:
        """Equity at the start of UTC ``day``: cash before the day's fills plus positions then."""
        cash = self.account.cash - self.account.day_cash.get(day, Decimal(0))
        return cash + sum((p.opening_value(day) for p in self.positions), Decimal(0))

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
