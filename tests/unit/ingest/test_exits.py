"""Optional ``take_profit``/``stop_loss`` on an alert: validated at the webhook, carried to the
decision the alert triggers, and placed as a bracket only where the venue takes brackets."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyperian.domain.brokers import Account, BrokerCapabilities
from kyperian.domain.decisions import Decision
from kyperian.execution.sizing import plan_order
from kyperian.fusion import FusionRules, fuse
from kyperian.ingest.parse import parse_alert, parse_mtf_alert
from tests.signal_factory import NOW, make_signal
from tests.unit.ingest.test_parse import WINDOW, alert, problems_of

ACCOUNT = Account(
    account_id="a", currency="USD", cash=Decimal(10**5), equity=Decimal(10**5),
    buying_power=Decimal(10**5),
)  # fmt: skip


def test_a_buy_with_exits_on_both_sides_of_the_price_is_accepted() -> None:
    signal = parse_alert(alert(take_profit="200.5", stop_loss=180), WINDOW)
    assert (signal.stop_loss, signal.price, signal.take_profit) == (180.0, 189.42, 200.5)


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"take_profit": 180, "stop_loss": 200}, "", "stop_loss must be below"),
        ({"take_profit": 185}, "", "stop_loss must be below"),
        ({"action": "sell", "stop_loss": 180}, "", "stop_loss must be above"),
        ({"take_profit": -1}, "take_profit", "greater than 0"),
        ({"stop_loss": "abc"}, "stop_loss", "stop_loss"),
        ({"action": "neutral", "stop_loss": 180}, "", "need a buy or sell"),
    ],
)
def test_exits_on_the_wrong_side_are_refused_naming_the_field(
    fields: dict[str, object], field: str, reason: str
) -> None:
    problems = problems_of(alert(**fields))
    assert any(reason in text and f.endswith(field) for f, text in problems.items()), problems


@given(
    price=st.floats(1, 1000),
    low=st.floats(0.01, 0.99),
    high=st.floats(1.01, 3),
    sell=st.booleans(),
)
def test_any_consistent_bracket_is_accepted(
    price: float, low: float, high: float, sell: bool
) -> None:
    below, above = price * low, price * high
    fields = (
        {"action": "sell", "take_profit": below, "stop_loss": above}
        if sell
        else {"take_profit": above, "stop_loss": below}
    )
    signal = parse_alert(alert(price=price, **fields), WINDOW)
    assert signal.take_profit is not None
    assert signal.stop_loss is not None


def test_mtf_entries_inherit_the_alerts_exits() -> None:
    payload = {
        "symbol": "AAPL", "source": "custom", "price": 100, "take_profit": 110, "stop_loss": 95,
        "signals": [{"timeframe": "1D", "action": "buy"}, {"timeframe": "4h", "action": "buy"}],
    }  # fmt: skip
    signals = parse_mtf_alert(payload, WINDOW)
    assert {(s.take_profit, s.stop_loss) for s in signals} == {(110.0, 95.0)}


def _decided(trigger_action: str) -> Decision:
    daily = make_signal(symbol="EXIT", timeframe="1D", action="BUY", age=timedelta(hours=1))
    trigger = make_signal(
        symbol="EXIT", timeframe="4h", action=trigger_action, age=timedelta(minutes=5)
    ).model_copy(update={"take_profit": 210.0, "stop_loss": 180.0, "price": 190.0})
    return fuse([daily, trigger], FusionRules(), NOW, symbol="EXIT", trigger=trigger)


def test_a_trigger_against_the_decision_leaves_no_exits() -> None:
    decision = _decided("SELL")
    assert (decision.take_profit, decision.stop_loss) == (None, None)


def test_the_triggered_decision_carries_the_exits_and_a_bracket_venue_gets_them() -> None:
    # GIVEN a BUY decision triggered by an alert with exits
    decision = _decided("STRONG_BUY")
    assert decision.action.direction > 0
    assert (decision.take_profit, decision.stop_loss) == (210.0, 180.0)
    # WHEN planned for a venue with brackets THEN the order is a bracket
    request = plan_order(decision, ACCOUNT, None, BrokerCapabilities(bracket_orders=True))
    assert request is not None
    assert (request.take_profit, request.stop_loss) == (Decimal("210.0"), Decimal("180.0"))
    # AND a venue without brackets gets the entry alone
    plain = plan_order(decision, ACCOUNT, None, BrokerCapabilities())
    assert plain is not None
    assert (plain.take_profit, plain.stop_loss) == (None, None)
