"""From an actionable decision to an order request: quantity, rounding, venue limits.

The engine owns this rule (size x equity / price, rounded down to what the venue takes);
venues only execute. The client order id is the decision id: derived from the intent, the
same on every redelivery, and what reconciliation looks the order up by at the venue.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Final

from kyperian.domain.brokers import (
    Account,
    BrokerCapabilities,
    OrderRequest,
    OrderSide,
    Position,
)
from kyperian.domain.decisions import Decision

_FRACTION_STEP: Final = Decimal("0.000001")
_WHOLE: Final = Decimal(1)


def client_order_id(decision_id: str) -> str:
    """The venue-facing id of a decision's order (32 hex: every venue's limit allows it)."""
    return decision_id


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
        client_order_id=client_order_id(decision.decision_id),
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
