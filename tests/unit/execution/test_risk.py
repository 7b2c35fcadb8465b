"""Book limits: the order rate never passes its limit, the cooldown ends exactly, losses veto.

The limits read only the book (what the ledger writes with each fill and intent); these
tests build the book the way the ledger does (``apply_fill`` in booking order, the day's
cash per UTC day, the minute's counter) and hold it to the definitions computed from the
whole history of fills.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.brokers import OrderSide
from kyperian.domain.decisions import Decision, VetoCode
from kyperian.domain.models import Action
from kyperian.execution import (
    AccountKey,
    Book,
    BookLimits,
    LedgerAccount,
    LedgerFill,
    LedgerPosition,
    book_veto,
    fold_fills,
)
from kyperian.execution.book import apply_fill, utc_day, utc_minute
from kyperian.execution.risk import daily_pnl, day_start
from tests.signal_factory import NOW

ACCOUNT = AccountKey(venue="paper", account_id="paper")
CASH = Decimal(100000)


def _book(fills: Sequence[LedgerFill] = (), counts: dict[str, int] | None = None) -> Book:
    """The book as the ledger writes it: fills booked in the order given."""
    positions = fold_fills(fills)
    cash = CASH + sum((f.cash_change for f in fills), Decimal(0))
    day_cash: dict[str, Decimal] = {}
    for fill in fills:
        day = utc_day(fill.filled_at)
        day_cash[day] = day_cash.get(day, Decimal(0)) + fill.cash_change
    account = LedgerAccount(
        key=ACCOUNT, starting_cash=CASH, cash=cash, opened_at=NOW, day_cash=day_cash
    )
    return Book(account=account, positions=tuple(positions.values()), order_counts=counts or {})


def _history_stop_outs(fills: Sequence[LedgerFill]) -> dict[str, datetime]:
    """The definition over the whole history: per symbol, its latest losing close."""
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


def _decision(
    action: Action = Action.BUY, symbol: str = "AAPL", price: float = 100, at: datetime = NOW
) -> Decision:
    return Decision(
        decision_id="d" * 32, symbol=symbol, action=action, score=0.5, confidence=0.8,
        position_size=0.05, price=price, decided_at=at,
    )  # fmt: skip


def _fill(
    n: int, side: OrderSide, qty: int, price: str, at: datetime, sym: str = "AAPL"
) -> LedgerFill:
    return LedgerFill(
        fill_id=f"f{n}", client_order_id=f"c{n}", symbol=sym, side=side,
        quantity=Decimal(qty), price=Decimal(price), filled_at=at,
    )  # fmt: skip


# --- orders per minute -------------------------------------------------------------------


@given(
    st.integers(1, 5),
    st.lists(st.integers(0, 300_000), min_size=1, max_size=60),
)
def test_the_order_rate_limit_never_lets_a_minute_hold_more_than_n(
    limit: int, offsets_ms: list[int]
) -> None:
    # GIVEN decisions arriving at any times and a limit of N orders per UTC minute
    limits = BookLimits(max_orders_per_minute=limit)
    counts: dict[str, int] = {}
    placed: list[datetime] = []

    # WHEN each decision that is not vetoed places an order, counted in its minute
    for offset in sorted(offsets_ms):
        now = NOW + timedelta(milliseconds=offset)
        veto = book_veto(limits, _decision(at=now), _book(counts=counts), now)
        if veto is None:
            counts[utc_minute(now)] = counts.get(utc_minute(now), 0) + 1
            placed.append(now)
        else:
            assert veto.code is VetoCode.MAX_ORDERS_PER_MINUTE

    # THEN no UTC minute holds more than N orders
    for at in placed:
        assert sum(1 for o in placed if utc_minute(o) == utc_minute(at)) <= limit
    # AND the limit only refused when the minute was full
    for offset in offsets_ms:
        minute = utc_minute(NOW + timedelta(milliseconds=offset))
        wanted = sum(1 for o in offsets_ms if utc_minute(NOW + timedelta(milliseconds=o)) == minute)
        assert counts[minute] == min(limit, wanted)


def test_the_order_rate_counts_the_utc_minute_and_vetoes_even_reductions() -> None:
    # GIVEN two orders in this UTC minute and a limit of 2 per minute
    minute = NOW.replace(second=30, microsecond=0)
    counts = {utc_minute(minute): 2, utc_minute(minute - timedelta(minutes=1)): 7}
    limits = BookLimits(max_orders_per_minute=2)

    # WHEN a sell is decided in the same minute  THEN it is vetoed with the count in the reason
    veto = book_veto(limits, _decision(Action.SELL, at=minute), _book(counts=counts), minute)
    assert veto is not None
    assert veto.code is VetoCode.MAX_ORDERS_PER_MINUTE
    assert "2 orders" in veto.reason
    # AND in the next minute a new order may go (the stale minute is not counted)
    later = minute + timedelta(seconds=30)
    assert book_veto(limits, _decision(at=later), _book(counts=counts), later) is None


# --- cooldown after a stop-out -----------------------------------------------------------


@given(st.integers(1, 3600), st.integers(-10, 4000))
def test_a_cooldown_is_honoured_exactly_up_to_its_end(cooldown: int, elapsed: int) -> None:
    # GIVEN a long AAPL position closed at a loss at STOP
    stop = NOW + timedelta(hours=1)
    fills = [_fill(1, OrderSide.BUY, 10, "100", NOW), _fill(2, OrderSide.SELL, 10, "90", stop)]
    limits = BookLimits(stop_out_cooldown_seconds=cooldown)
    now = stop + timedelta(seconds=elapsed)

    # WHEN a new AAPL entry is decided `elapsed` seconds later
    veto = book_veto(limits, _decision(at=now), _book(fills), now)

    # THEN it is vetoed exactly while 0 <= elapsed < cooldown
    if 0 <= elapsed < cooldown:
        assert veto is not None
        assert veto.code is VetoCode.STOP_OUT_COOLDOWN
    else:
        assert veto is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["AAPL", "MSFT"]),
            st.sampled_from(list(OrderSide)),
            st.integers(1, 30),
            st.decimals(min_value="1", max_value="200", places=2),
        ),
        max_size=25,
    )
)
def test_the_stop_out_kept_on_the_position_is_the_historys_latest_losing_close(
    trades: list[tuple[str, OrderSide, int, Decimal]],
) -> None:
    # GIVEN any buys and sells of two symbols, one second apart
    fills = [
        _fill(n, side, qty, str(price), NOW + timedelta(seconds=n), sym)
        for n, (sym, side, qty, price) in enumerate(trades)
    ]

    # WHEN they are booked in order into positions
    book = _book(fills)

    # THEN each position's last stop-out is the one the whole history defines
    kept = {p.symbol: p.last_stop_out_at for p in book.positions if p.last_stop_out_at}
    assert kept == _history_stop_outs(fills)


def test_only_a_losing_close_is_a_stop_out_and_only_its_symbol_cools_down() -> None:
    # GIVEN AAPL closed at a loss, MSFT closed at a gain, and AAPL reduced (not closed) at a loss
    fills = [
        _fill(1, OrderSide.BUY, 10, "100", NOW),
        _fill(2, OrderSide.SELL, 10, "95", NOW + timedelta(seconds=1)),
        _fill(3, OrderSide.BUY, 10, "100", NOW, "MSFT"),
        _fill(4, OrderSide.SELL, 10, "105", NOW + timedelta(seconds=1), "MSFT"),
        _fill(5, OrderSide.BUY, 10, "100", NOW, "TSLA"),
        _fill(6, OrderSide.SELL, 5, "90", NOW + timedelta(seconds=1), "TSLA"),
    ]

    # WHEN the book is kept  THEN only AAPL's closing fill is a stop-out, as the history says
    book = _book(sorted(fills, key=lambda f: f.filled_at))
    stopped = {p.symbol: p.last_stop_out_at for p in book.positions if p.last_stop_out_at}
    assert stopped == {"AAPL": NOW + timedelta(seconds=1)} == _history_stop_outs(fills)
    # AND a short covered at a loss, or flipped through zero at a loss, is one too
    short = [
        _fill(7, OrderSide.SELL, 10, "100", NOW, "ES"),
        _fill(8, OrderSide.BUY, 15, "110", NOW + timedelta(seconds=2), "ES"),
    ]
    es = _book(short).position("ES")
    assert es is not None
    assert es.last_stop_out_at == NOW + timedelta(seconds=2)
    assert _history_stop_outs(short) == {"ES": NOW + timedelta(seconds=2)}
    # AND a reducing sell of the still-held TSLA is no entry, so never cooled down
    limits = BookLimits(stop_out_cooldown_seconds=600)
    later = NOW + timedelta(seconds=2)
    sell = _decision(Action.SELL, "TSLA", at=later)
    assert book_veto(limits, sell, _book(fills), later) is None


# --- max daily loss ----------------------------------------------------------------------


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(OrderSide)),
            st.integers(1, 50),
            st.decimals(min_value="1", max_value="200", places=2),
            st.integers(-86_400, 86_399),
        ),
        max_size=20,
    )
)
def test_daily_pnl_is_the_change_of_marked_equity_since_midnight(
    trades: list[tuple[OrderSide, int, Decimal, int]],
) -> None:
    # GIVEN fills yesterday and today in one symbol
    midnight = day_start(NOW)
    fills = [
        _fill(n, side, qty, str(price), midnight + timedelta(seconds=s))
        for n, (side, qty, price, s) in enumerate(trades)
    ]
    now = midnight + timedelta(seconds=86_399)

    # WHEN the fills are booked in time order and the day's P&L is read from the book
    ordered = sorted(fills, key=lambda f: f.filled_at)
    pnl, opening = daily_pnl(_book(ordered), now)

    # THEN it is the day's realized P&L plus the change of unrealized P&L since midnight
    before = fold_fills([f for f in ordered if f.filled_at < midnight]).get("AAPL")
    after = fold_fills(ordered).get("AAPL")

    def unrealized(p: LedgerPosition | None) -> Decimal:
        return p.quantity * (p.mark() - p.average_price) if p else Decimal(0)

    def realized(p: LedgerPosition | None) -> Decimal:
        return p.realized_pnl if p else Decimal(0)

    expected = realized(after) - realized(before) + unrealized(after) - unrealized(before)
    assert abs(pnl - expected) <= Decimal("0.0001") * (1 + len(fills))
    assert abs(opening - (CASH + realized(before) + unrealized(before))) <= Decimal("0.0001") * (
        1 + len(fills)
    )


def test_a_daily_loss_at_the_limit_vetoes_entries_not_exits_and_resets_at_midnight() -> None:
    # GIVEN 1000 AAPL bought at 100 today, now marked at 95: a loss of 5000 = 5 % of 100 000
    morning = day_start(NOW) + timedelta(hours=1)
    fills = [_fill(1, OrderSide.BUY, 1000, "100", morning)]
    limits = BookLimits(max_daily_loss=0.05)
    now = morning + timedelta(hours=1)

    # WHEN a MSFT entry is decided while AAPL trades at 95 (the last fill said 100)
    msft = _decision(symbol="MSFT", at=now)
    assert book_veto(limits, msft, _book(fills), now) is None
    aapl = _decision(price=95, at=now)
    veto = book_veto(limits, aapl, _book(fills), now)

    # THEN the AAPL entry at 95 (the last known price) is vetoed with the arithmetic
    assert veto is not None
    assert veto.code is VetoCode.MAX_DAILY_LOSS
    assert "5000.00" in veto.reason
    # AND a sell that reduces AAPL is allowed
    assert book_veto(limits, _decision(Action.SELL, price=95), _book(fills), now) is None
    # AND a loss just short of the limit does not veto
    assert book_veto(limits, _decision(price=95.01, at=now), _book(fills), now) is None
    # AND a loss realized today vetoes today, and the next UTC day starts afresh
    closed = [*fills, _fill(2, OrderSide.SELL, 1000, "95", now)]
    assert book_veto(limits, msft, _book(closed), now) is not None
    tomorrow = day_start(NOW) + timedelta(days=1, minutes=1)
    later = _decision(symbol="MSFT", at=tomorrow)
    assert book_veto(limits, later, _book(closed), tomorrow) is None


def test_disabled_limits_and_non_actionable_decisions_never_veto() -> None:
    # GIVEN a stop-out just now, a full minute of orders and a large loss
    fills = [_fill(1, OrderSide.BUY, 1000, "100", NOW), _fill(2, OrderSide.SELL, 1000, "50", NOW)]
    counts = {utc_minute(NOW): 10}
    off = BookLimits(max_daily_loss=0, max_orders_per_minute=0, stop_out_cooldown_seconds=0)

    # WHEN limits are off, or the decision holds  THEN nothing is vetoed
    assert book_veto(off, _decision(), _book(fills, counts), NOW) is None
    on = BookLimits(max_daily_loss=0.01, max_orders_per_minute=1, stop_out_cooldown_seconds=60)
    assert book_veto(on, _decision(Action.WAIT), _book(fills, counts), NOW) is None
    assert book_veto(on, _decision(), _book(fills, counts), NOW) is not None
