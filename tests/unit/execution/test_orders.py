"""The order state machine: allowed moves only, and venue reports booked exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.brokers import Order, OrderSide, OrderStatus, OrderType, TimeInForce
from kyperian.execution import (
    TRANSITIONS,
    AccountKey,
    IllegalTransition,
    LedgerOrder,
    OrderState,
    apply_venue_order,
    transition,
)
from tests.signal_factory import NOW

ACCOUNT = AccountKey(venue="paper", account_id="paper")


def _order(state: OrderState = OrderState.INTENT, filled: str = "0") -> LedgerOrder:
    return LedgerOrder(
        account=ACCOUNT, client_order_id="d1", decision_id="d1", symbol="AAPL",
        side=OrderSide.BUY, quantity=Decimal(10), reference_price=Decimal(100), state=state,
        filled_quantity=Decimal(filled), created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def _venue(status: OrderStatus, filled: str, price: str | None = "100") -> Order:
    return Order(
        order_id="v1", client_order_id="d1", symbol="AAPL", side=OrderSide.BUY,
        order_type=OrderType.MARKET, time_in_force=TimeInForce.DAY, quantity=Decimal(10),
        filled_quantity=Decimal(filled), average_fill_price=Decimal(price) if price else None,
        status=status, submitted_at=NOW, updated_at=NOW,
    )  # fmt: skip


@given(st.sampled_from(list(OrderState)), st.sampled_from(list(OrderState)))
def test_only_listed_transitions_are_possible(start: OrderState, to: OrderState) -> None:
    # GIVEN an order in any state  WHEN asked to move to any state
    order = _order(start)
    if to in TRANSITIONS[start]:
        # THEN a listed move succeeds and bumps the version
        moved = transition(order, to, NOW + timedelta(seconds=1))
        assert (moved.state, moved.version) == (to, order.version + 1)
    else:
        # THEN any other raises
        with pytest.raises(IllegalTransition):
            transition(order, to, NOW)


def test_terminal_states_are_final_and_never_count_as_exposure() -> None:
    # GIVEN every state  THEN exactly the four final ones have no way out and no pending quantity
    final = {s for s in OrderState if s.terminal}
    assert final == {
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    }
    assert all(_order(s).signed_remaining == 0 for s in final)
    assert _order(OrderState.SUBMITTED).signed_remaining == Decimal(10)


def test_a_venue_fill_is_booked_once_with_a_deterministic_id() -> None:
    # GIVEN a submitted order  WHEN the venue reports it filled at 100
    change = apply_venue_order(_order(OrderState.SUBMITTED), _venue(OrderStatus.FILLED, "10"), NOW)

    # THEN the ledger order is FILLED with one fill of 10 named after the cumulative quantity
    assert change is not None
    filled, [fill] = change
    assert (filled.state, filled.venue_order_id) == (OrderState.FILLED, "v1")
    assert (fill.fill_id, fill.quantity, fill.price) == ("d1#10", Decimal(10), Decimal(100))
    # AND the same report again changes nothing
    assert apply_venue_order(filled, _venue(OrderStatus.FILLED, "10"), NOW) is None


def test_partial_fills_book_the_difference_at_its_own_price() -> None:
    # GIVEN 4 filled at 100  WHEN the venue reports 10 filled at an average of 103
    partial, _ = apply_venue_order(  # type: ignore[misc]
        _order(OrderState.SUBMITTED), _venue(OrderStatus.PARTIALLY_FILLED, "4"), NOW
    )
    change = apply_venue_order(partial, _venue(OrderStatus.FILLED, "10", "103"), NOW)

    # THEN the second fill is 6 at 105 (4 x 100 + 6 x 105 = 10 x 103)
    assert change is not None
    _, [fill] = change
    assert (fill.quantity, fill.price) == (Decimal(6), Decimal(105))


def test_a_venue_contradicting_the_ledger_is_an_illegal_transition() -> None:
    # GIVEN a filled order  WHEN the venue says it is only accepted, or filled less
    filled = _order(OrderState.FILLED, filled="10")
    with pytest.raises(IllegalTransition):
        apply_venue_order(filled, _venue(OrderStatus.ACCEPTED, "10"), NOW)
    with pytest.raises(IllegalTransition):
        apply_venue_order(filled, _venue(OrderStatus.FILLED, "5"), NOW)
