"""From decision to order: quantity, rounding, venue limits (kyperian.execution.sizing)."""

from __future__ import annotations

from decimal import Decimal

from kyperian.adapters.brokers.paper import PaperBroker
from kyperian.domain.brokers import Account, BrokerCapabilities, OrderSide, Position
from kyperian.domain.decisions import Decision, Veto, VetoCode
from kyperian.domain.models import Action
from kyperian.execution.sizing import plan_order
from kyperian.fusion import FusionRules, fuse
from tests.signal_factory import NOW, documented_signals
from tests.unit.engine.fakes import MemoryPaperStore

ACCOUNT = Account(
    account_id="a",
    currency="USD",
    cash=Decimal(50000),
    equity=Decimal(100000),
    buying_power=Decimal(100000),
)


def _decision(
    action: Action = Action.BUY, size: float = 0.034, price: float | None = 194.0, **kw: object
) -> Decision:
    return Decision(
        decision_id="d-1", symbol="AAPL", action=action, score=0.3, confidence=0.6,
        position_size=size, price=price, decided_at=NOW, **kw,
    )  # fmt: skip


def test_quantity_is_size_times_equity_over_price_rounded_down() -> None:
    # GIVEN a 3.4 % BUY at 194 on 100 000 of equity
    caps = BrokerCapabilities(fractional_quantity=True)

    # WHEN planned  THEN 17.525773 shares are bought, tagged with the decision id
    request = plan_order(_decision(), ACCOUNT, None, caps)
    assert request is not None
    assert request.quantity == Decimal("17.525773")
    assert (request.side, request.client_order_id, request.reference_price) == (
        OrderSide.BUY,
        "d-1",
        Decimal("194.0"),
    )


def test_whole_units_when_the_venue_takes_no_fractions() -> None:
    # GIVEN a venue without fractions  WHEN planned  THEN 17 shares; under one share, nothing
    caps = BrokerCapabilities()
    assert plan_order(_decision(), ACCOUNT, None, caps).quantity == Decimal(17)  # type: ignore[union-attr]
    assert plan_order(_decision(size=0.001), ACCOUNT, None, caps) is None


def test_without_short_selling_a_sell_only_reduces_a_long() -> None:
    # GIVEN a long of 5 on a venue that cannot short  WHEN a large SELL is planned  THEN it sells 5
    long = Position(symbol="AAPL", quantity=Decimal(5), average_price=Decimal(190))
    caps = BrokerCapabilities()
    assert plan_order(_decision(Action.SELL), ACCOUNT, long, caps).quantity == Decimal(5)  # type: ignore[union-attr]
    assert plan_order(_decision(Action.SELL), ACCOUNT, None, caps) is None


def test_nothing_is_planned_for_vetoed_unpriced_or_neutral_decisions() -> None:
    caps = BrokerCapabilities(fractional_quantity=True)
    veto = Veto(code=VetoCode.LOW_CONFIDENCE, reason="low")
    assert plan_order(_decision(size=0.0, vetoes=(veto,)), ACCOUNT, None, caps) is None
    assert plan_order(_decision(price=None), ACCOUNT, None, caps) is None
    assert plan_order(_decision(Action.NEUTRAL, size=0.0), ACCOUNT, None, caps) is None


def test_the_documented_example_buys_the_documented_quantity() -> None:
    # GIVEN the decision of docs/fusion.md section 7 on a 100 000 paper account

    signals = documented_signals()
    decision = fuse(signals, FusionRules(), NOW, symbol="AAPL", trigger=signals[3])

    # WHEN the paper trader plans its order  THEN it buys 17.554976 shares at 194
    request = plan_order(decision, ACCOUNT, None, PaperBroker(MemoryPaperStore()).caps)
    assert request is not None
    assert (request.side, request.quantity) == (OrderSide.BUY, Decimal("17.554976"))
    assert request.reference_price == Decimal(194)
