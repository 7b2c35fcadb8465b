"""The book: positions are the fold of fills, cash their sum, exposure counts open orders."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.brokers import OrderSide
from kyperian.execution import (
    AccountKey,
    Book,
    LedgerAccount,
    LedgerFill,
    LedgerOrder,
    OrderState,
    fold_fills,
)
from tests.signal_factory import NOW

ACCOUNT = AccountKey(venue="paper", account_id="paper")

fills_strategy = st.lists(
    st.builds(
        lambda n, symbol, side, qty, price: LedgerFill(
            fill_id=f"f{n}",
            client_order_id=f"c{n}",
            symbol=symbol,
            side=side,
            quantity=qty,
            price=price,
            filled_at=NOW,
        ),
        st.integers(0, 10**6),
        st.sampled_from(["AAPL", "MSFT"]),
        st.sampled_from(list(OrderSide)),
        st.decimals(min_value="0.000001", max_value="1000", places=6),
        st.decimals(min_value="0.01", max_value="1000", places=2),
    ),
    max_size=30,
)


@given(fills_strategy)
def test_positions_always_equal_the_sum_of_fills(fills: list[LedgerFill]) -> None:
    # GIVEN any sequence of buys and sells  WHEN folded into positions
    positions = fold_fills(fills)

    # THEN each quantity is exactly the signed sum of its fills, and the realized P&L plus
    # the open position at cost equals the cash the fills moved
    for symbol, position in positions.items():
        mine = [f for f in fills if f.symbol == symbol]
        assert position.quantity == sum((f.signed_quantity for f in mine), Decimal(0))
        cash = sum((f.cash_change for f in mine), Decimal(0))
        at_cost = position.quantity * position.average_price
        assert abs(position.realized_pnl - (cash + at_cost)) < Decimal("0.0001") * (1 + len(mine))


def _book(cash: str, fills: list[LedgerFill], orders: list[LedgerOrder]) -> Book:
    account = LedgerAccount(
        key=ACCOUNT, starting_cash=Decimal(cash), cash=Decimal(cash), opened_at=NOW
    )
    return Book(
        account=account, positions=tuple(fold_fills(fills).values()), open_orders=tuple(orders)
    )


def test_exposure_counts_pending_orders_of_every_task() -> None:
    # GIVEN 100 000 in cash, nothing held, and a pending BUY of 50 AAPL at 100 (another task's)
    pending = LedgerOrder(
        account=ACCOUNT, client_order_id="c1", symbol="AAPL", side=OrderSide.BUY,
        quantity=Decimal(50), reference_price=Decimal(100), state=OrderState.PENDING_APPROVAL,
        created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    book = _book("100000", [], [pending])

    # WHEN exposure is read at 100  THEN the order counts: 5 %
    assert book.exposure("AAPL", 100.0) == 0.05
    assert book.exposure("MSFT", 100.0) == 0.0


def test_exposure_of_a_short_is_negative_and_marked_at_the_given_price() -> None:
    # GIVEN a short of 100 at 100 (cash rose by 10 000)
    sold = LedgerFill(
        fill_id="f1", client_order_id="c1", symbol="AAPL", side=OrderSide.SELL,
        quantity=Decimal(100), price=Decimal(100), filled_at=NOW,
    )  # fmt: skip
    book = _book("110000", [sold], [])

    # WHEN the price is 110  THEN exposure is -100 x 110 / (110 000 - 11 000)
    assert book.exposure("AAPL", 110.0) == -(100 * 110) / 99000
