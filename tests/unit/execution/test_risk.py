"""Book limits: the order rate never passes its limit, the cooldown ends exactly, losses veto."""

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
    LedgerOrder,
    LedgerPosition,
    OrderState,
    book_veto,
    fold_fills,
)
from kyperian.execution.risk import daily_pnl, day_start, orders_in_window, stop_outs
from tests.signal_factory import NOW

ACCOUNT = AccountKey(venue="paper", account_id="paper")
CASH = Decimal(100000)


def _book(fills: Sequence[LedgerFill] = ()) -> Book:
    positions = fold_fills(fills)
    cash = CASH + sum((f.cash_change for f in fills), Decimal(0))
    return Book(
        account=LedgerAccount(key=ACCOUNT, starting_cash=CASH, cash=cash, opened_at=NOW),
        positions=tuple(p for p in positions.values() if p.quantity),
    )


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


def _order(n: int, at: datetime) -> LedgerOrder:
    return LedgerOrder(
        account=ACCOUNT, client_order_id=f"o{n}", symbol="AAPL", side=OrderSide.BUY,
        quantity=Decimal(1), state=OrderState.FILLED, created_at=at, updated_at=at,
    )  # fmt: skip


# --- orders per minute -------------------------------------------------------------------


@given(
    st.integers(1, 5),
    st.lists(st.integers(0, 300_000), min_size=1, max_size=60),
)
def test_the_order_rate_limit_never_lets_a_minute_hold_more_than_n(
    limit: int, offsets_ms: list[int]
) -> None:
    # GIVEN decisions arriving at any times and a limit of N orders per minute
    limits = BookLimits(max_orders_per_minute=limit)
    orders: list[LedgerOrder] = []

    # WHEN each decision that is not vetoed places an order at its time
    for n, offset in enumerate(sorted(offsets_ms)):
        now = NOW + timedelta(milliseconds=offset)
        veto = book_veto(limits, _decision(at=now), _book(), orders, [], now)
        if veto is None:
            orders.append(_order(n, now))
        else:
            assert veto.code is VetoCode.MAX_ORDERS_PER_MINUTE

    # THEN no 60 s window ending at any order holds more than N orders
    for order in orders:
        assert orders_in_window(orders, order.created_at) <= limit
    # AND the limit only refused when the minute was full
    assert len(orders) >= min(limit, len(offsets_ms))


def test_the_order_rate_counts_a_sliding_minute_and_vetoes_even_reductions() -> None:
    # GIVEN two orders, 59 s and 30 s ago, and a limit of 2 per minute
    orders = [_order(1, NOW - timedelta(seconds=59)), _order(2, NOW - timedelta(seconds=30))]
    limits = BookLimits(max_orders_per_minute=2)

    # WHEN a sell is decided now  THEN it is vetoed with the count in the reason
    veto = book_veto(limits, _decision(Action.SELL), _book(), orders, [], NOW)
    assert veto is not None
    assert veto.code is VetoCode.MAX_ORDERS_PER_MINUTE
    assert "2 orders" in veto.reason
    # AND two seconds later the first has left the window and a new order may go
    assert book_veto(limits, _decision(), _book(), orders, [], NOW + timedelta(seconds=1)) is None


# --- cooldown after a stop-out -----------------------------------------------------------


@given(st.integers(1, 3600), st.integers(-10, 4000))
def test_a_cooldown_is_honoured_exactly_up_to_its_end(cooldown: int, elapsed: int) -> None:
    # GIVEN a long AAPL position closed at a loss at STOP
    stop = NOW + timedelta(hours=1)
    fills = [_fill(1, OrderSide.BUY, 10, "100", NOW), _fill(2, OrderSide.SELL, 10, "90", stop)]
    limits = BookLimits(stop_out_cooldown_seconds=cooldown)
    now = stop + timedelta(seconds=elapsed)

    # WHEN a new AAPL entry is decided `elapsed` seconds later
    veto = book_veto(limits, _decision(at=now), _book(fills), [], fills, now)

    # THEN it is vetoed exactly while 0 <= elapsed < cooldown
    if 0 <= elapsed < cooldown:
        assert veto is not None
        assert veto.code is VetoCode.STOP_OUT_COOLDOWN
    else:
        assert veto is None


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

    # WHEN stop-outs are listed  THEN only AAPL's closing fill is one
    assert stop_outs(fills) == {"AAPL": NOW + timedelta(seconds=1)}
    # AND a short covered at a loss, or flipped through zero at a loss, is one too
    short = [
        _fill(7, OrderSide.SELL, 10, "100", NOW, "ES"),
        _fill(8, OrderSide.BUY, 15, "110", NOW + timedelta(seconds=2), "ES"),
    ]
    assert stop_outs(short) == {"ES": NOW + timedelta(seconds=2)}
    # AND a reducing sell of the still-held TSLA is no entry, so never cooled down
    limits = BookLimits(stop_out_cooldown_seconds=600)
    later = NOW + timedelta(seconds=2)
    sell = _decision(Action.SELL, "TSLA", at=later)
    assert book_veto(limits, sell, _book(fills), [], fills, later) is None


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

    # WHEN the day's P&L is computed at the last fill's prices
    pnl, opening = daily_pnl(CASH, fills, now)

    # THEN it is the day's realized P&L plus the change of unrealized P&L since midnight
    ordered = sorted(fills, key=lambda f: f.filled_at)
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
    assert book_veto(limits, msft, _book(fills), [], fills, now) is None
    aapl = _decision(price=95, at=now)
    veto = book_veto(limits, aapl, _book(fills), [], fills, now)

    # THEN the AAPL entry at 95 (the last known price) is vetoed with the arithmetic
    assert veto is not None
    assert veto.code is VetoCode.MAX_DAILY_LOSS
    assert "5000.00" in veto.reason
    # AND a sell that reduces AAPL is allowed
    assert book_veto(limits, _decision(Action.SELL, price=95), _book(fills), [], fills, now) is None
    # AND a loss just short of the limit does not veto
    assert book_veto(limits, _decision(price=95.01, at=now), _book(fills), [], fills, now) is None
    # AND a loss realized today vetoes today, and the next UTC day starts afresh
    closed = [*fills, _fill(2, OrderSide.SELL, 1000, "95", now)]
    assert book_veto(limits, msft, _book(closed), [], closed, now) is not None
    tomorrow = day_start(NOW) + timedelta(days=1, minutes=1)
    later = _decision(symbol="MSFT", at=tomorrow)
    assert book_veto(limits, later, _book(closed), [], closed, tomorrow) is None


def test_disabled_limits_and_non_actionable_decisions_never_veto() -> None:
    # GIVEN a stop-out just now, a full minute of orders and a large loss
    fills = [_fill(1, OrderSide.BUY, 1000, "100", NOW), _fill(2, OrderSide.SELL, 1000, "50", NOW)]
    orders = [_order(n, NOW) for n in range(10)]
    off = BookLimits(max_daily_loss=0, max_orders_per_minute=0, stop_out_cooldown_seconds=0)

    # WHEN limits are off, or the decision holds  THEN nothing is vetoed
    assert book_veto(off, _decision(), _book(fills), orders, fills, NOW) is None
    on = BookLimits(max_daily_loss=0.01, max_orders_per_minute=1, stop_out_cooldown_seconds=60)
    assert book_veto(on, _decision(Action.WAIT), _book(fills), orders, fills, NOW) is None
    assert book_veto(on, _decision(), _book(fills), orders, fills, NOW) is not None
