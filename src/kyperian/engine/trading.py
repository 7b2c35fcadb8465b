"""Auto-trading: turn an actionable decision into one order on the configured broker.

The engine owns the rule from decision to order (size x equity / price, rounded to what
the venue accepts); the broker only executes. An order is submitted once and never
retried: after an uncertain failure the broker is asked whether the order exists.
"""

from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Final

from kyperian.domain.brokers import (
    Account,
    Broker,
    BrokerCapabilities,
    Order,
    OrderRequest,
    OrderSide,
    Position,
)
from kyperian.domain.decisions import Decision

_FRACTION_STEP: Final = Decimal("0.000001")
_WHOLE: Final = Decimal(1)


def plan_order(
    decision: Decision,
    account: Account,
    position: Position | None,
    caps: BrokerCapabilities,
) -> OrderRequest | None:
    """The market order for a decision, or None when there is nothing (or too little) to trade.

    Quantity = size x equity / price, rounded down to the venue's step (whole units when
    it takes no fractions). Without short selling a sell only reduces a long position. The
    alert's take-profit and stop-loss make it a bracket where the venue takes brackets.
    """
    if not decision.actionable or decision.price is None or account.equity <= 0:
        return None
    price = Decimal(repr(decision.price))
    side = OrderSide.BUY if decision.action.direction > 0 else OrderSide.SELL
    quantity = Decimal(repr(decision.position_size)) * account.equity / price
    if side is OrderSide.SELL and not caps.short_selling:
        held = position.quantity if position else Decimal(0)
        quantity = min(quantity, max(held, Decimal(0)))
    step = _FRACTION_STEP if caps.fractional_quantity else _WHOLE
    quantity = quantity.quantize(step, rounding=ROUND_DOWN)
    if quantity <= 0:
        return None
    return OrderRequest(
        client_order_id=decision.decision_id,
        symbol=decision.symbol,
        side=side,
        quantity=quantity,
        reference_price=price,
        decision_id=decision.decision_id,
        **_exits(decision, caps),
    )


def _exits(decision: Decision, caps: BrokerCapabilities) -> dict[str, Decimal]:
    """The alert's take-profit/stop-loss as a bracket, where the venue takes brackets.

    Venues without them (paper, IB and Schwab as wired) trade the entry alone; the exits stay
    visible on the decision.
    """
    if not caps.bracket_orders:
        return {}
    exits = {"take_profit": decision.take_profit, "stop_loss": decision.stop_loss}
    return {name: Decimal(repr(value)) for name, value in exits.items() if value is not None}


class AutoTrader:
    """Sends actionable decisions to a broker and reports the symbol's exposure to fusion."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def exposure(self, symbol: str, price: float | None) -> float:
        """Signed position value / equity; a non-positive equity counts as fully exposed."""
        position = self.broker.position(symbol)
        if position is None or position.quantity == 0:
            return 0.0
        mark = self._mark(position, price)
        equity = self.broker.account().equity
        if equity <= 0:
            return math.copysign(1.0, float(position.quantity))
        return float(position.quantity * mark / equity)

    @staticmethod
    def _mark(position: Position, price: float | None) -> Decimal:
        if price is not None and math.isfinite(price) and price > 0:
            return Decimal(repr(price))
        return position.market_price or position.average_price

    def execute(self, decision: Decision) -> Order | None:
        """Submit the decision's order once; None when the plan says there is nothing to do."""
        request = plan_order(
            decision,
            self.broker.account(),
            self.broker.position(decision.symbol),
            self.broker.caps,
        )
        if request is None:
            return None
        return self.broker.submit_order(request)

    def reconcile(self, decision: Decision) -> Order | None:
        """After an uncertain submit: the order the broker holds for this decision, if any."""
        return self.broker.find_order(decision.decision_id)
