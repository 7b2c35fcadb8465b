"""The order lifecycle, written down once: states, allowed transitions, and the order record.

An order in the ledger starts as an INTENT, recorded (conditionally, keyed by the decision)
before anything is sent, so a crash can never leave an order the ledger does not know
about. From there it waits for a person (PENDING_APPROVAL) or is SUBMITTED under a short
lease, then follows what the venue reports. ``TRANSITIONS`` is the whole rule: anything
not listed raises ``IllegalTransition``, and every adapter reports into ``transition`` or
``apply_venue_order``. Pure data and functions: no I/O, no venue, no clock of its own.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from kyperian.domain.brokers import Order, OrderSide, OrderStatus, OrderType
from kyperian.domain.errors import KyperianError
from kyperian.domain.models import IsoTime

PRICE_STEP: Final = Decimal("0.0000000001")


class IllegalTransition(KyperianError):
    """An order was asked to move where the state machine does not allow: a bug or a mismatch."""


class OrderState(StrEnum):
    INTENT = "INTENT"
    """Recorded before the venue is called; nothing has left the engine."""
    PENDING_APPROVAL = "PENDING_APPROVAL"
    """Waiting for a person to approve or reject it (approval mode)."""
    SUBMITTED = "SUBMITTED"
    """Handed to the venue under a lease; the venue's answer is not recorded yet."""
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    """Refused: by the venue, by risk or the kill switch before the venue, or by a person."""
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def open(self) -> bool:
        """Still able to change the book: counts as pending exposure."""
        return not self.terminal

    @property
    def at_venue(self) -> bool:
        """The venue acknowledged it (it may still fill)."""
        return self in {OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED}


_AFTER_VENUE: Final = frozenset(
    {
        OrderState.ACCEPTED,
        OrderState.PARTIALLY_FILLED,
        OrderState.FILLED,
        OrderState.CANCELLED,
        OrderState.REJECTED,
        OrderState.EXPIRED,
    }
)

TRANSITIONS: Final = MappingProxyType(
    {
        OrderState.INTENT: frozenset(
            {OrderState.PENDING_APPROVAL, OrderState.SUBMITTED, OrderState.REJECTED}
        ),
        OrderState.PENDING_APPROVAL: frozenset(
            {OrderState.SUBMITTED, OrderState.REJECTED, OrderState.EXPIRED}
        ),
        # SUBMITTED -> SUBMITTED: a worker takes over an expired lease to reconcile.
        OrderState.SUBMITTED: _AFTER_VENUE | {OrderState.SUBMITTED},
        OrderState.ACCEPTED: frozenset(
            {
                OrderState.PARTIALLY_FILLED,
                OrderState.FILLED,
                OrderState.CANCELLED,
                OrderState.EXPIRED,
            }
        ),
        OrderState.PARTIALLY_FILLED: frozenset(
            {
                OrderState.PARTIALLY_FILLED,
                OrderState.FILLED,
                OrderState.CANCELLED,
                OrderState.EXPIRED,
            }
        ),
        OrderState.FILLED: frozenset(),
        OrderState.CANCELLED: frozenset(),
        OrderState.REJECTED: frozenset(),
        OrderState.EXPIRED: frozenset(),
    }
)
"""Allowed moves. Terminal states have none."""

VENUE_STATES: Final = MappingProxyType(
    {
        OrderStatus.ACCEPTED: OrderState.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED: OrderState.PARTIALLY_FILLED,
        OrderStatus.FILLED: OrderState.FILLED,
        OrderStatus.CANCELED: OrderState.CANCELLED,
        OrderStatus.REJECTED: OrderState.REJECTED,
        OrderStatus.EXPIRED: OrderState.EXPIRED,
    }
)
"""How a venue's order status maps into the ledger's lifecycle."""


class AccountKey(BaseModel):
    """One account at one venue: the ledger keeps a book per key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str = Field(min_length=1, pattern=r"^[a-z0-9_-]+$")
    account_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")

    def __str__(self) -> str:
        return f"{self.venue}#{self.account_id}"


class LedgerFill(BaseModel):
    """One execution as the ledger books it; ``fill_id`` makes booking it twice impossible."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fill_id: str
    client_order_id: str
    symbol: str
    side: OrderSide
    quantity: Decimal = Field(gt=0)
    price: Decimal = Field(gt=0)
    commission: Decimal = Decimal(0)
    filled_at: IsoTime

    @property
    def signed_quantity(self) -> Decimal:
        return self.side.sign * self.quantity

    @property
    def cash_change(self) -> Decimal:
        """What the fill does to cash: a buy pays, a sell receives, commission always costs."""
        return -self.signed_quantity * self.price - self.commission


class LedgerOrder(BaseModel):
    """The ledger's record of one order; ``version`` guards every write (optimistic lock)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: AccountKey
    client_order_id: str = Field(min_length=1, max_length=48)
    decision_id: str | None = None
    symbol: str
    side: OrderSide
    quantity: Decimal = Field(ge=0)
    """Zero only for an intent refused before sizing produced anything to trade."""
    order_type: OrderType = OrderType.MARKET
    reference_price: Decimal | None = None
    take_profit: Decimal | None = None
    """With ``stop_loss``: sent as a bracket (only to venues that take brackets)."""
    stop_loss: Decimal | None = None
    state: OrderState = OrderState.INTENT
    venue_order_id: str | None = None
    filled_quantity: Decimal = Decimal(0)
    average_fill_price: Decimal | None = None
    reason: str | None = None
    created_at: IsoTime
    updated_at: IsoTime
    lease_until: IsoTime | None = None
    """While SUBMITTED: until when the worker that sent it owns the outcome."""
    expires_at: IsoTime | None = None
    """While PENDING_APPROVAL: when it expires unless a person decides first."""
    version: int = Field(default=1, ge=1)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def signed_remaining(self) -> Decimal:
        """What the order may still add to the position, signed (pending exposure)."""
        return self.side.sign * self.remaining if self.state.open else Decimal(0)


def transition(order: LedgerOrder, to: OrderState, now: datetime, **changes: object) -> LedgerOrder:
    """The order in its next state (version + 1); raises ``IllegalTransition`` if not allowed."""
    if to not in TRANSITIONS[order.state]:
        raise IllegalTransition(
            f"order {order.client_order_id}: {order.state} -> {to} is not allowed"
        )
    update: dict[str, object] = {
        "state": to,
        "updated_at": now,
        "version": order.version + 1,
        **changes,
    }
    if to is not OrderState.SUBMITTED:
        update.setdefault("lease_until", None)
    if to is not OrderState.PENDING_APPROVAL:
        update.setdefault("expires_at", None)
    return order.model_copy(update=update)


def apply_venue_order(
    order: LedgerOrder, venue: Order, now: datetime
) -> tuple[LedgerOrder, list[LedgerFill]] | None:
    """What the venue's view of the order changes in the ledger, or None when nothing.

    The fill between the ledger's filled quantity and the venue's is booked as one
    ``LedgerFill`` whose id is the client order id and the cumulative quantity: the same
    report applied twice books nothing twice. Raises ``IllegalTransition`` when the venue
    contradicts the ledger (a filled quantity going down, a finished order reopening).
    """
    if venue.client_order_id != order.client_order_id:
        raise IllegalTransition(
            f"venue order {venue.order_id} is {venue.client_order_id}, not {order.client_order_id}"
        )
    state = VENUE_STATES[venue.status]
    filled = venue.filled_quantity
    if filled < order.filled_quantity:
        raise IllegalTransition(
            f"order {order.client_order_id}: venue filled {filled} < booked {order.filled_quantity}"
        )
    if state is order.state and filled == order.filled_quantity:
        return None
    fills = _new_fill(order, venue, now)
    updated = transition(
        order,
        state,
        now,
        venue_order_id=venue.order_id,
        filled_quantity=filled,
        average_fill_price=venue.average_fill_price,
        reason=venue.reason,
    )
    return updated, fills


def _new_fill(order: LedgerOrder, venue: Order, now: datetime) -> list[LedgerFill]:
    delta = venue.filled_quantity - order.filled_quantity
    if delta <= 0:
        return []
    if venue.average_fill_price is None:
        raise IllegalTransition(f"order {order.client_order_id}: filled with no average price")
    before = order.filled_quantity * (order.average_fill_price or Decimal(0))
    price = ((venue.filled_quantity * venue.average_fill_price - before) / delta).quantize(
        PRICE_STEP
    )
    return [
        LedgerFill(
            fill_id=f"{order.client_order_id}#{venue.filled_quantity.normalize():f}",
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=delta,
            price=price,
            filled_at=venue.updated_at or now,
        )
    ]
