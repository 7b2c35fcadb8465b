"""Limits on the whole book beyond exposure: daily loss, order rate, cooldown after a stop-out.

Each limit is a pure function of the book and the clock, so every engine task reading
the same ledger reaches the same answer, and one read of the book (which the exposure
check makes anyway) answers all three: what they need is written into the book with the
fills and the intents (see ``kyperian.execution.book``), never recomputed from history.
A breach is a ``Veto`` (its code and arithmetic in the reason) that the processor puts
on the decision, as ``MAX_GROSS_EXPOSURE`` is. A limit of 0 or None is off.

Definitions (exact, because the tests hold them to it):

- **Daily P&L** of an account at ``now``: its equity at ``now`` minus its equity at the
  start of the UTC day (00:00:00 UTC of ``now``'s date). Equity is cash plus every
  position valued at its last known price (the last fill's price; the decision's own
  price for its symbol, the latest known). So it is realized P&L of the day plus the
  change in unrealized P&L since midnight, commissions included. A fill counts for the
  UTC day of its ``filled_at``. ``MAX_DAILY_LOSS`` vetoes entries once the loss reaches
  the limit, a fraction of the day's opening equity.
- **Orders per minute**: orders recorded for the account in ``now``'s UTC minute
  (hh:mm:00 to hh:mm:59.999), counted by the ledger as each intent is written. A
  decision is vetoed when the count already reaches the limit; and since the count is
  taken by a conditional write together with the intent, no minute ever holds more than
  the limit even when tasks decide in the same instant (the loser's order is recorded
  as refused, naming the limit). Orders placed by flattening are not counted.
- **Stop-out**: a fill that closes a position (the position before it was non-zero, after
  it zero or of the opposite sign) and whose realized P&L (commission included) is
  negative. For ``cooldown`` seconds from the fill's ``filled_at`` (inclusive) to
  ``filled_at + cooldown`` (exclusive), entries on that symbol are vetoed.

An **entry** is an order that does not reduce the symbol's committed position (held plus
open orders): reductions are never vetoed by the loss and cooldown limits (they lower
risk); the order-rate limit counts and vetoes every order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from kyperian.domain.decisions import Decision, Veto, VetoCode
from kyperian.execution.book import Book, utc_day


@dataclass(frozen=True, slots=True)
class BookLimits:
    """The three limits; 0 or None turns one off."""

    max_daily_loss: float | None = None
    """Fraction of the equity at the start of the UTC day (0.05 = 5 %)."""
    max_orders_per_minute: int | None = None
    stop_out_cooldown_seconds: int | None = None

    @property
    def any(self) -> bool:
        return bool(
            self.max_daily_loss or self.max_orders_per_minute or self.stop_out_cooldown_seconds
        )


def is_entry(book: Book, decision: Decision) -> bool:
    """Whether the decision adds to (or opens) the symbol's committed position."""
    committed = book.committed(decision.symbol)
    return not committed or (committed > 0) == (decision.action.direction > 0)


def day_start(now: datetime) -> datetime:
    """00:00:00 UTC of ``now``'s UTC date."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def daily_pnl(
    book: Book, now: datetime, marks: dict[str, Decimal] | None = None
) -> tuple[Decimal, Decimal]:
    """(P&L since the start of ``now``'s UTC day, equity at that start), from the book."""
    opening = book.opening_equity(utc_day(now))
    return book.equity(marks) - opening, opening


def cooldown_until(book: Book, symbol: str, seconds: int) -> datetime | None:
    """When the cooldown after the symbol's latest stop-out ends, or None if it had none."""
    position = book.position(symbol)
    stopped = position.last_stop_out_at if position else None
    return stopped + timedelta(seconds=seconds) if stopped is not None else None


def book_veto(limits: BookLimits, decision: Decision, book: Book, now: datetime) -> Veto | None:
    """The first breached limit as a veto, or None (also for a non-actionable decision)."""
    if not decision.actionable:
        return None
    if limits.max_orders_per_minute:
        count = book.orders_in_minute(now)
        if count >= limits.max_orders_per_minute:
            return rate_veto(count, limits.max_orders_per_minute)
    if not is_entry(book, decision):
        return None
    return _loss_veto(limits, decision, book, now) or _cooldown_veto(limits, decision, book, now)


def rate_veto(count: int, limit: int) -> Veto:
    """The order-rate veto, with the count."""
    return Veto(
        code=VetoCode.MAX_ORDERS_PER_MINUTE,
        reason=f"{count} orders in this UTC minute reach the limit of {limit} per minute",
    )


def _loss_veto(limits: BookLimits, decision: Decision, book: Book, now: datetime) -> Veto | None:
    if not limits.max_daily_loss:
        return None
    marks = {decision.symbol: Decimal(repr(decision.price))} if decision.price else {}
    pnl, opening = daily_pnl(book, now, marks)
    limit = Decimal(repr(limits.max_daily_loss)) * opening
    if opening > 0 and -pnl < limit:
        return None
    return Veto(
        code=VetoCode.MAX_DAILY_LOSS,
        reason=(
            f"loss since 00:00 UTC {-pnl:.2f} reaches the daily limit {limit:.2f} "
            f"({limits.max_daily_loss:.4f} of the day's opening equity {opening:.2f})"
        ),
    )


def _cooldown_veto(
    limits: BookLimits, decision: Decision, book: Book, now: datetime
) -> Veto | None:
    if not limits.stop_out_cooldown_seconds:
        return None
    seconds = limits.stop_out_cooldown_seconds
    until = cooldown_until(book, decision.symbol, seconds)
    if until is None or now >= until or now < until - timedelta(seconds=seconds):
        return None
    started = until - timedelta(seconds=seconds)
    return Veto(
        code=VetoCode.STOP_OUT_COOLDOWN,
        reason=(
            f"{decision.symbol} was stopped out at {started.isoformat()}: no new entry "
            f"before {until.isoformat()}"
        ),
    )
