"""Reconciliation: does the ledger's book agree with what the venue holds?

Compared: the signed quantity of every symbol, and the set of orders resting at the
venue. Orders still in flight (INTENT, PENDING_APPROVAL, SUBMITTED) are not expected at
the venue yet and are left out, and so is the position of a symbol with a SUBMITTED order
(the venue may have filled it a moment before the ledger books it). Cash is not
compared: venues charge fees and interest the ledger learns only from statements. Any
difference is a ``Mismatch`` naming both sides; the engine halts the account on one (a
person decides who is right). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from kyperian.domain.brokers import Order, Position
from kyperian.execution.book import LedgerPosition
from kyperian.execution.orders import LedgerOrder, OrderState


class Mismatch(BaseModel):
    """One disagreement between the ledger and the venue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    """``position`` or ``order``."""
    subject: str
    """The symbol or the client order id."""
    ledger: str
    venue: str

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}: ledger={self.ledger} venue={self.venue}"


def compare(
    ledger_positions: Iterable[LedgerPosition],
    venue_positions: Iterable[Position],
    ledger_open: Iterable[LedgerOrder],
    venue_open: Iterable[Order],
) -> list[Mismatch]:
    """Every difference in positions and resting orders, sorted; empty when they agree."""
    ledger_open = list(ledger_open)
    moving = {o.symbol for o in ledger_open if o.state is OrderState.SUBMITTED}
    ours = {p.symbol: p.quantity for p in ledger_positions if p.quantity != 0}
    theirs = {p.symbol: p.quantity for p in venue_positions if p.quantity != 0}
    ours = {s: q for s, q in ours.items() if s not in moving}
    theirs = {s: q for s, q in theirs.items() if s not in moving}
    found = [
        Mismatch(
            kind="position",
            subject=symbol,
            ledger=str(ours.get(symbol, Decimal(0))),
            venue=str(theirs.get(symbol, Decimal(0))),
        )
        for symbol in sorted(ours.keys() | theirs.keys())
        if ours.get(symbol, Decimal(0)) != theirs.get(symbol, Decimal(0))
    ]
    resting = {o.client_order_id: o for o in ledger_open if o.state.at_venue}
    venue_resting = {o.client_order_id: o for o in venue_open}
    for cid in sorted(resting.keys() | venue_resting.keys()):
        if cid not in venue_resting:
            found.append(
                Mismatch(kind="order", subject=cid, ledger=resting[cid].state, venue="absent")
            )
        elif cid not in resting:
            found.append(
                Mismatch(
                    kind="order", subject=cid, ledger="absent", venue=venue_resting[cid].status
                )
            )
    return found
