"""Limits on the whole book beyond exposure: daily loss, order rate, cooldown after a stop-out.

Each limit is a pure function of the book, the ledger's orders and fills, and the clock,
so every engine task reading the same ledger reaches the same answer. A breach is a
``Veto`` (its code and arithmetic in the reason) that the processor puts on the decision,
as ``MAX_GROSS_EXPOSURE`` is. A limit of 0 or None is off.

Definitions (exact, because the tests hold them to it):

- **Daily P&L** of an account at ``now``: its equity at ``now`` minus its equity at the
  start of the UTC day (00:00:00 UTC of ``now``'s date). Equity is the starting cash plus
  every fill's cash change plus every position valued at its last known price (the last
  fill's price; the decision's own price for its symbol, the latest known). So it is
  realized P&L of the day plus the change in unrealized P&L since midnight, commissions
  included. ``MAX_DAILY_LOSS`` vetoes entries once the loss reaches the limit, a
  fraction of the day-start equity.
- **Orders per minute**: orders the ledger recorded for the account (any state) with
  ``now - 60 s < created_at <= now``. A decision is vetoed when that count already
  reaches the limit, so no 60 s window ever holds more than the limit (within one task;
  two tasks deciding in the same instant can each take the last slot).
- **Stop-out**: a fill that closes a position (the position before it was non-zero, after
  it zero or of the opposite sign) and whose realized P&L (commission included) is
  negative. For ``cooldown`` seconds from the fill's ``filled_at`` (inclusive) to
  ``filled_at + cooldown`` (exclusive), entries on that symbol are vetoed.

An **entry** is an order that does not reduce the symbol's committed position (held plus
open orders): reductions are never vetoed by the loss and cooldown limits (they lower
risk); the order-rate limit counts and vetoes every order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from kyperian.domain.decisions import Decision, Veto, VetoCode
from kyperian.execution.book import Book, LedgerPosition, apply_fill, fold_fills
from kyperian.execution.orders import LedgerFill, LedgerOrder

RATE_WINDOW: Final = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class BookLimits:
    """The three limits; 0 or None turns one off."""

    max_daily_loss: float | None = None
    """Fraction of the equity at the start of the UTC day (0.05 = 5 %)."""
    max_orders_per_minute: int | None = None
    stop_out_cooldown_seconds: int | None = None

    @property
    def needs_fills(self) -> bool:
        return bool(self.max_daily_loss) or bool(self.stop_out_cooldown_seconds)

    @property
    def needs_orders(self) -> bool:
        return bool(self.max_orders_per_minute)


def is_entry(book: Book, decision: Decision) -> bool:
    """Whether the decision adds to (or opens) the symbol's committed position."""
    committed = book.committed(decision.symbol)
    return not committed or (committed > 0) == (decision.action.direction > 0)


def day_start(now: datetime) -> datetime:
    """00:00:00 UTC of ``now``'s UTC date."""
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def equity_at(
    starting_cash: Decimal, fills: Iterable[LedgerFill], marks: Mapping[str, Decimal]
) -> Decimal:
    """Starting cash plus the fills' cash plus positions at ``marks`` (else last fill)."""
    fills = list(fills)
    cash = starting_cash + sum((f.cash_change for f in fills), Decimal(0))
    positions = fold_fills(fills)
    value = sum((p.quantity * (marks.get(s) or p.mark()) for s, p in positions.items()), Decimal(0))
    return cash + value


def daily_pnl(
    starting_cash: Decimal,
    fills: Sequence[LedgerFill],
    now: datetime,
    marks: Mapping[str, Decimal] | None = None,
) -> tuple[Decimal, Decimal]:
    """(P&L since the start of ``now``'s UTC day, equity at that start)."""
    start = day_start(now)
    ordered = sorted((f for f in fills if f.filled_at <= now), key=lambda f: f.filled_at)
    opening = equity_at(starting_cash, (f for f in ordered if f.filled_at < start), {})
    return equity_at(starting_cash, ordered, marks or {}) - opening, opening


def orders_in_window(orders: Iterable[LedgerOrder], now: datetime) -> int:
    """Orders created in ``(now - 60 s, now]``."""
    return sum(1 for o in orders if now - RATE_WINDOW < o.created_at <= now)


def stop_outs(fills: Iterable[LedgerFill]) -> dict[str, datetime]:
    """Per symbol, the time of its latest stop-out (see the module's definition)."""
    positions: dict[str, LedgerPosition] = {}
    latest: dict[str, datetime] = {}
    for fill in sorted(fills, key=lambda f: (f.filled_at, f.fill_id)):
        before = positions.get(fill.symbol, LedgerPosition(symbol=fill.symbol))
        after = apply_fill(before, fill)
        positions[fill.symbol] = after
        closed = before.quantity != 0 and (
            after.quantity == 0 or (after.quantity > 0) != (before.quantity > 0)
        )
        if closed and after.realized_pnl - before.realized_pnl < 0:
            latest[fill.symbol] = fill.filled_at
    return latest


def cooldown_until(fills: Iterable[LedgerFill], symbol: str, seconds: int) -> datetime | None:
    """When the cooldown after the symbol's latest stop-out ends, or None if it had none."""
    stopped = stop_outs(fills).get(symbol)
    return stopped + timedelta(seconds=seconds) if stopped is not None else None


def book_veto(
    limits: BookLimits,
    decision: Decision,
    book: Book,
    orders: Sequence[LedgerOrder],
    fills: Sequence[LedgerFill],
    now: datetime,
) -> Veto | None:
    """The first breached limit as a veto, or None (also for a non-actionable decision)."""
    if not decision.actionable:
        return None
    if limits.max_orders_per_minute:
        count = orders_in_window(orders, now)
        if count >= limits.max_orders_per_minute:
            return Veto(
                code=VetoCode.MAX_ORDERS_PER_MINUTE,
                reason=(
                    f"{count} orders in the last 60 s reach the limit of "
                    f"{limits.max_orders_per_minute} per minute"
                ),
            )
    if not is_entry(book, decision):
        return None
    return _loss_veto(limits, decision, book, fills, now) or _cooldown_veto(
        limits, decision, fills, now
    )


def _loss_veto(
    limits: BookLimits,
    decision: Decision,
    book: Book,
    fills: Sequence[LedgerFill],
    now: datetime,
) -> Veto | None:
    if not limits.max_daily_loss:
        return None
    marks = {decision.symbol: Decimal(repr(decision.price))} if decision.price else {}
    pnl, opening = daily_pnl(book.account.starting_cash, fills, now, marks)
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
    limits: BookLimits, decision: Decision, fills: Sequence[LedgerFill], now: datetime
) -> Veto | None:
    if not limits.stop_out_cooldown_seconds:
        return None
    seconds = limits.stop_out_cooldown_seconds
    until = cooldown_until((f for f in fills if f.filled_at <= now), decision.symbol, seconds)
    if until is None or now >= until:
        return None
    started = until - timedelta(seconds=seconds)
    return Veto(
        code=VetoCode.STOP_OUT_COOLDOWN,
        reason=(
            f"{decision.symbol} was stopped out at {started.isoformat()}: no new entry "
            f"before {until.isoformat()}"
        ),
    )
