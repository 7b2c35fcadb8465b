"""Exactly one order per actionable decision, whatever crashes, redeliveries and races do.

The sequence for a decision (its client order id is the decision id):

1. Size the order from the book and *record the intent* with a conditional put
   (``attribute_not_exists``), already moved along the state machine to
   PENDING_APPROVAL (approval mode) or to SUBMITTED with a lease: one write (taking a
   slot of the minute's order counter in the same transaction when the order rate is
   limited), and only its winner may call the venue; a loser (a redelivery, another
   task) gets the winner's record back from the failed write and carries on from it.
2. An INTENT found later (written by an older task) does the same move as a versioned
   write: INTENT -> PENDING_APPROVAL, or INTENT -> SUBMITTED under a lease.
3. The lease holder submits once. A refusal is recorded (REJECTED with the venue's
   reason). Any other failure asks the venue (``find_order``) instead of submitting again;
   if the venue cannot say, the order stays SUBMITTED ("in doubt") and the caller keeps
   the message for a retry.
4. A SUBMITTED order whose lease expired (its worker crashed, before or after the venue
   call) is reconciled: ``find_order`` by client order id, record what the venue has, and
   only if the venue has nothing is it submitted, under a new lease.

The venue's own refusal of a second order with the same client order id is the last line
of defence, not the first. Pure logic over two ports (the ledger, the broker contract).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final

from kyperian.domain.brokers import Broker, Order, OrderRequest, OrderSide
from kyperian.domain.decisions import Decision, Veto, VetoCode
from kyperian.domain.errors import InvalidOrderError, KyperianError, TemporaryError
from kyperian.execution.book import Book, utc_minute
from kyperian.execution.orders import (
    AccountKey,
    IllegalTransition,
    LedgerOrder,
    OrderState,
    apply_venue_order,
    transition,
)
from kyperian.execution.ports import (
    AccountHalted,
    Ledger,
    OrderExists,
    RateLimited,
    RateSlot,
    StaleRecord,
)
from kyperian.execution.reconcile import Mismatch, compare
from kyperian.execution.risk import BookLimits, book_veto, rate_veto
from kyperian.execution.sizing import client_order_id, plan_order

_ATTEMPTS: Final = 4
_BOOK_REUSE_SECONDS: Final = 1.0
_ALL: Final = 1 << 62


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ExecutionKind(StrEnum):
    ORDERED = "ORDERED"
    """The venue has the order and the ledger recorded its answer."""
    PENDING_APPROVAL = "PENDING_APPROVAL"
    """Recorded, waiting for a person."""
    REFUSED = "REFUSED"
    """Recorded as REJECTED with a reason (venue, kill switch, nothing to trade, a person)."""
    IN_DOUBT = "IN_DOUBT"
    """Recorded but the venue's answer is unknown: keep the message, reconcile later."""
    BUSY = "BUSY"
    """Another worker holds the order's lease: keep the message."""

    @property
    def resolved(self) -> bool:
        """Whether the decision's order needs nothing more from this delivery."""
        return self in {
            ExecutionKind.ORDERED,
            ExecutionKind.PENDING_APPROVAL,
            ExecutionKind.REFUSED,
        }


@dataclass(frozen=True, slots=True)
class Execution:
    kind: ExecutionKind
    order: LedgerOrder
    settled_before: bool = False
    """The order was already settled when this call found it (a redelivery): nothing new."""

    @property
    def resolved(self) -> bool:
        return self.kind.resolved


_KIND_OF_STATE: Final = {
    OrderState.PENDING_APPROVAL: ExecutionKind.PENDING_APPROVAL,
    OrderState.ACCEPTED: ExecutionKind.ORDERED,
    OrderState.PARTIALLY_FILLED: ExecutionKind.ORDERED,
    OrderState.FILLED: ExecutionKind.ORDERED,
    OrderState.CANCELLED: ExecutionKind.ORDERED,
    OrderState.EXPIRED: ExecutionKind.ORDERED,
    OrderState.REJECTED: ExecutionKind.REFUSED,
}


class OrderExecutor:
    """Places and reconciles the orders of one account at one venue through the ledger."""

    def __init__(
        self,
        ledger: Ledger,
        venue: Broker,
        account: AccountKey,
        *,
        approval: bool = False,
        approval_seconds: int = 900,
        lease_seconds: int = 30,
        max_gross_exposure: float | None = None,
        limits: BookLimits | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.ledger = ledger
        self.venue = venue
        self.account = account
        self.approval = approval
        self.approval_seconds = approval_seconds
        self.lease_seconds = lease_seconds
        self.max_gross_exposure = max_gross_exposure
        self.limits = limits or BookLimits()
        self._clock = clock
        self._opened = False
        self._recent = threading.local()

    # --- the book ---------------------------------------------------------------------

    def open(self) -> None:
        """Open the ledger account with the venue's cash if it does not exist yet."""
        if self.ledger.account(self.account) is None:
            venue_account = self.venue.account()
            self.ledger.open_account(
                self.account, venue_account.cash, venue_account.currency, self._clock()
            )
        self._opened = True

    def book(self) -> Book:
        """The account's book (opening the account on first use)."""
        if not self._opened:
            self.open()
        return self.ledger.book(self.account)

    def exposure(self, symbol: str, price: float | None) -> float:
        """The symbol's committed exposure on the shared book (open orders included).

        The book is kept for this thread for a moment, so sizing the decision's order
        right after does not read it again (sizing needs a recent book, not a locked one:
        the conditional intent is what makes the order unique).
        """
        book = self.book()
        self._recent.book = (time.monotonic(), book)
        return book.exposure(symbol, price)

    def risk_veto(self, decision: Decision) -> Veto | None:
        """A veto when the decision breaches a limit on the whole book, else None.

        Every limit reads the book fusion just read (this thread's), so it costs no extra
        call: the order-rate, daily-loss and cooldown limits (``kyperian.execution.risk``)
        read what the ledger writes into the book with each intent and fill. An entry
        that reduces the symbol's committed position is never vetoed by gross exposure,
        daily loss or cooldown.
        """
        if self.max_gross_exposure is None and not self.limits.any:
            return None
        if not decision.actionable or decision.price is None:
            return None
        recent: tuple[float, Book] | None = getattr(self._recent, "book", None)
        book = recent[1] if recent is not None else self.book()
        return self._gross_veto(decision, book) or self._limits_veto(decision, book)

    def _gross_veto(self, decision: Decision, book: Book) -> Veto | None:
        if self.max_gross_exposure is None:
            return None
        committed = book.committed(decision.symbol)
        if committed and (committed > 0) != (decision.action.direction > 0):
            return None
        price = Decimal(repr(decision.price))
        gross = book.gross_exposure({decision.symbol: price})
        if gross + decision.position_size <= self.max_gross_exposure + 1e-9:
            return None
        return Veto(
            code=VetoCode.MAX_GROSS_EXPOSURE,
            reason=(
                f"gross exposure {gross:.4f} + {decision.position_size:.4f} would exceed the "
                f"book limit {self.max_gross_exposure:.4f}"
            ),
        )

    def _limits_veto(self, decision: Decision, book: Book) -> Veto | None:
        return book_veto(self.limits, decision, book, self._clock())

    def _sizing_book(self) -> Book:
        recent: tuple[float, Book] | None = getattr(self._recent, "book", None)
        self._recent.book = None
        if recent is not None and time.monotonic() - recent[0] < _BOOK_REUSE_SECONDS:
            return recent[1]
        return self.book()

    # --- one decision -----------------------------------------------------------------

    def execute(self, decision: Decision) -> Execution | None:
        """Make sure the decision has exactly one order; None when it is not actionable."""
        if not decision.actionable:
            return None
        cid = client_order_id(decision.decision_id)
        book = self._sizing_book()
        order, mine = self._record_intent(decision, cid, book)
        if not mine:
            kind = _KIND_OF_STATE.get(order.state)
            if kind is not None:
                return Execution(kind, order, settled_before=True)
            return self._advance(order)
        if order.state is OrderState.SUBMITTED:
            return self._send(order, maybe_sent=False, book=book)
        return self._advance(order)

    def _record_intent(self, decision: Decision, cid: str, book: Book) -> tuple[LedgerOrder, bool]:
        """The decision's order as recorded, and whether this call recorded it."""
        now = self._clock()
        request = plan_order(
            decision, book.as_account(), book.as_position(decision.symbol), self.venue.caps
        )
        intent = LedgerOrder(
            account=self.account,
            client_order_id=cid,
            decision_id=decision.decision_id,
            symbol=decision.symbol,
            side=OrderSide.BUY if decision.action.direction > 0 else OrderSide.SELL,
            quantity=request.quantity if request else Decimal(0),
            reference_price=request.reference_price if request else None,
            take_profit=request.take_profit if request else None,
            stop_loss=request.stop_loss if request else None,
            created_at=now,
            updated_at=now,
        )
        first = self._first_move(intent, self._refusal(book, request), now)
        try:
            self._create(first, book, now)
        except OrderExists as exists:
            existing = exists.existing or self.ledger.order(self.account, cid)
            if existing is None:  # pragma: no cover - a conditional put cannot lose the row
                raise TemporaryError(f"order {cid} exists but cannot be read yet") from None
            return existing, False
        except RateLimited as full:
            veto = rate_veto(full.limit, full.limit)
            reason = f"{veto.code}: {veto.reason}"
            return self._record_intent_refused(
                transition(intent, OrderState.REJECTED, now, reason=reason)
            )
        except AccountHalted as halted:
            refused = transition(intent, OrderState.REJECTED, now, reason=str(halted))
            return self._record_intent_refused(refused)
        return first, True

    def _create(self, order: LedgerOrder, book: Book, now: datetime) -> None:
        """Record a new order; one that may reach the venue requires the kill switch off
        at the moment it is written and takes a slot of the minute's order counter."""
        if order.state is OrderState.REJECTED:
            self.ledger.create_order(order)
            return
        limit = self.limits.max_orders_per_minute
        slot = None
        if limit:
            minute = utc_minute(now)
            stale = tuple(m for m in book.order_counts if m != minute)
            slot = RateSlot(minute=minute, limit=limit, stale=stale)
        self.ledger.create_order(order, slot, unless_halted=True)

    def _record_intent_refused(self, refused: LedgerOrder) -> tuple[LedgerOrder, bool]:
        """Record the refusal of an intent the order counter turned away (or the winner's)."""
        try:
            self.ledger.create_order(refused)
        except OrderExists as exists:
            existing = exists.existing or self.ledger.order(self.account, refused.client_order_id)
            if existing is None:  # pragma: no cover - a conditional put cannot lose the row
                raise TemporaryError(f"order {refused.client_order_id} not readable") from None
            return existing, False
        return refused, True

    def _first_move(self, intent: LedgerOrder, refusal: str | None, now: datetime) -> LedgerOrder:
        """Where a new intent goes before it is written: refused, pending, or leased."""
        if refusal:
            return transition(intent, OrderState.REJECTED, now, reason=refusal)
        if self.approval:
            expires = now + timedelta(seconds=self.approval_seconds)
            return transition(intent, OrderState.PENDING_APPROVAL, now, expires_at=expires)
        lease = now + timedelta(seconds=self.lease_seconds)
        return transition(intent, OrderState.SUBMITTED, now, lease_until=lease)

    @staticmethod
    def _refusal(book: Book, request: OrderRequest | None) -> str | None:
        if book.account.halted:
            return f"trading halted: {book.account.halt_reason or 'kill switch'}"
        if request is None:
            return "nothing to trade: the size rounds to zero at the venue"
        return None

    def _advance(self, order: LedgerOrder, depth: int = 0) -> Execution:
        if depth >= _ATTEMPTS:
            return Execution(ExecutionKind.BUSY, order)
        kind = _KIND_OF_STATE.get(order.state)
        if kind is not None:
            return Execution(kind, order)
        now = self._clock()
        try:
            if order.state is OrderState.INTENT and self.approval:
                waiting = transition(
                    order,
                    OrderState.PENDING_APPROVAL,
                    now,
                    expires_at=now + timedelta(seconds=self.approval_seconds),
                )
                self.ledger.save_order(waiting)
                return Execution(ExecutionKind.PENDING_APPROVAL, waiting)
            if (
                order.state is OrderState.SUBMITTED
                and order.lease_until
                and order.lease_until > now
            ):
                return Execution(ExecutionKind.BUSY, order)
            leased = transition(
                order,
                OrderState.SUBMITTED,
                now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
            )
            self.ledger.save_order(leased)
        except StaleRecord:
            return self._advance(self._reread(order), depth + 1)
        return self._send(leased, maybe_sent=order.state is OrderState.SUBMITTED)

    def _reread(self, order: LedgerOrder) -> LedgerOrder:
        fresh = self.ledger.order(self.account, order.client_order_id)
        if fresh is None:  # pragma: no cover - orders are never deleted
            raise TemporaryError(f"order {order.client_order_id} vanished from the ledger")
        return fresh

    def _send(self, order: LedgerOrder, maybe_sent: bool, book: Book | None = None) -> Execution:
        """Call the venue once under the lease; ask it first if an earlier attempt may have.

        ``book``: the book the order was sized on, so booking its fill need not read the
        position again (the write still holds the position to the version read).
        """
        if maybe_sent:
            found = self._ask_venue(order)
            if found is None:
                return Execution(ExecutionKind.IN_DOUBT, order)
            if isinstance(found, Order):
                return self._record(order, found)
        request = OrderRequest(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            reference_price=order.reference_price,
            decision_id=order.decision_id,
            take_profit=order.take_profit,
            stop_loss=order.stop_loss,
        )
        try:
            venue_order = self.venue.submit_order(request)
        except KyperianError as exc:
            return self._after_failed_submit(order, exc)
        return self._record(order, venue_order, book)

    def _after_failed_submit(self, order: LedgerOrder, failure: KyperianError) -> Execution:
        """Never resubmit: ask the venue. A refusal it does not hold is recorded as one."""
        found = self._ask_venue(order)
        if isinstance(found, Order):  # e.g. "client order id already used": it is there
            return self._record(order, found)
        if isinstance(failure, InvalidOrderError) and found is False:
            return self._refuse(order, f"venue refused: {failure}")
        return Execution(ExecutionKind.IN_DOUBT, order)

    def _ask_venue(self, order: LedgerOrder) -> Order | bool | None:
        """The venue's order, False if it has none, None if it cannot say."""
        try:
            found = self.venue.find_order(order.client_order_id)
        except KyperianError:
            return None
        return found if found is not None else False

    def _refuse(self, order: LedgerOrder, reason: str) -> Execution:
        refused = transition(order, OrderState.REJECTED, self._clock(), reason=reason)
        try:
            self.ledger.save_order(refused)
        except StaleRecord:
            return self._advance(self._reread(order), 1)
        return Execution(ExecutionKind.REFUSED, refused)

    def _record(
        self, order: LedgerOrder, venue_order: Order, book: Book | None = None
    ) -> Execution:
        """Book the venue's answer (state and fills) exactly once, re-reading on a race."""
        current = order
        for _ in range(_ATTEMPTS):
            change = apply_venue_order(current, venue_order, self._clock())
            if change is None:
                return Execution(_KIND_OF_STATE.get(current.state, ExecutionKind.ORDERED), current)
            updated, fills = change
            try:
                self.ledger.record(updated, fills, book)
            except StaleRecord:
                current = self._reread(current)
                book = None
                continue
            return Execution(_KIND_OF_STATE.get(updated.state, ExecutionKind.ORDERED), updated)
        return Execution(ExecutionKind.IN_DOUBT, current)

    # --- the kill switch ----------------------------------------------------------------

    def halt(self, reason: str, flatten: bool = False) -> list[Execution]:
        """Stop every new order of the account (all tasks see it on their next book read).

        ``flatten`` then closes every position with a market order through the same
        lifecycle (intent, lease, venue, booking), exempt from the halt it just set.
        """
        self.book()  # opens the account if needed
        self.ledger.set_halt(self.account, True, reason, self._clock())
        return self._flatten() if flatten else []

    def resume(self) -> None:
        """Clear the kill switch."""
        self.book()
        self.ledger.set_halt(self.account, False, None)

    def _flatten(self) -> list[Execution]:
        now = self._clock()
        results = []
        for position in self.ledger.positions(self.account):
            if position.quantity == 0:
                continue
            intent = LedgerOrder(
                account=self.account,
                client_order_id=f"flat-{uuid.uuid4().hex}",
                symbol=position.symbol,
                side=OrderSide.SELL if position.quantity > 0 else OrderSide.BUY,
                quantity=abs(position.quantity),
                reference_price=position.mark(),
                reason="flatten on halt",
                created_at=now,
                updated_at=now,
            )
            leased = transition(
                intent,
                OrderState.SUBMITTED,
                now,
                lease_until=now + timedelta(seconds=self.lease_seconds),
            )
            self.ledger.create_order(leased)
            results.append(self._send(leased, maybe_sent=False))
        return results

    # --- people and housekeeping --------------------------------------------------------

    def approve(self, cid: str) -> Execution:
        """A person approves a pending order: it is sent now (never once it has expired).

        The move to SUBMITTED is one write that also requires the kill switch off, as an
        intent's is: a halt set before it refuses the approval (``IllegalTransition``
        naming the halt; the order stays pending, to approve after a resume, reject, or
        let expire); a halt set after it finds the order in flight, like an intent
        recorded just before a halt.
        """
        order = self._pending(cid)
        now = self._clock()
        leased = transition(
            order,
            OrderState.SUBMITTED,
            now,
            lease_until=now + timedelta(seconds=self.lease_seconds),
        )
        try:
            self.ledger.save_order(leased, unless_halted=True)
        except AccountHalted as halted:
            raise IllegalTransition(f"order {cid} not sent, it stays pending: {halted}") from None
        except StaleRecord:
            state = self._reread(order).state
            raise IllegalTransition(f"order {cid} changed meanwhile: it is {state}") from None
        return self._send(leased, maybe_sent=False)

    def reject(self, cid: str, reason: str = "rejected by an operator") -> LedgerOrder:
        order = self._pending(cid)
        refused = transition(order, OrderState.REJECTED, self._clock(), reason=reason)
        self.ledger.save_order(refused)
        return refused

    def _pending(self, cid: str) -> LedgerOrder:
        """The order if it still waits for a person; an overdue one is expired first."""
        order = self.ledger.order(self.account, cid)
        if order is None:
            raise InvalidOrderError(f"no order {cid}")
        order = self._expired_if_due(order)
        if order.state is not OrderState.PENDING_APPROVAL:
            raise IllegalTransition(f"order {cid} is {order.state}, not waiting for approval")
        return order

    def _expired_if_due(self, order: LedgerOrder) -> LedgerOrder:
        """A pending order past its time, recorded EXPIRED (as the ledger has it after a race)."""
        now = self._clock()
        if order.state is not OrderState.PENDING_APPROVAL or order.expires_at is None:
            return order
        if order.expires_at > now:
            return order
        expired = transition(order, OrderState.EXPIRED, now, reason="approval expired")
        try:
            self.ledger.save_order(expired)
        except StaleRecord:
            return self._expired_if_due(self._reread(order))
        return expired

    def orders(
        self,
        symbol: str | None = None,
        states: Sequence[OrderState] | None = None,
        limit: int = 100,
    ) -> list[LedgerOrder]:
        """The account's orders as of now: a pending order past its time reads as EXPIRED.

        Expiry is enforced where it is seen, not only on the reconciliation tick: an
        overdue order found here is recorded EXPIRED before it is shown.
        """
        wanted = set(states) if states else None
        read = None if wanted is None else [*wanted, OrderState.PENDING_APPROVAL]
        found = self.ledger.orders(self.account, symbol=symbol, states=read, limit=_ALL)
        current = [self._expired_if_due(o) for o in found]
        return [o for o in current if wanted is None or o.state in wanted][-limit:]

    def expire_approvals(self) -> int:
        """Expire pending orders past their time; returns how many."""
        now = self._clock()
        count = 0
        for order in self.ledger.orders(self.account, states=[OrderState.PENDING_APPROVAL]):
            if order.expires_at is not None and order.expires_at <= now:
                try:
                    self.ledger.save_order(
                        transition(order, OrderState.EXPIRED, now, reason="approval expired")
                    )
                except StaleRecord:
                    continue
                count += 1
        return count

    def reconcile(self) -> list[Mismatch]:
        """Settle what can be settled, then compare the ledger's book with the venue's."""
        self.book()  # opens the account if needed
        self.expire_approvals()
        self.resolve_in_doubt()
        book = self.ledger.book(self.account)
        return compare(
            book.positions, self.venue.positions(), book.open_orders, self.venue.open_orders()
        )

    def resolve_in_doubt(self) -> list[Execution]:
        """Settle orders whose lease expired or that rest at the venue (start-up, the loop)."""
        now = self._clock()
        results = []
        for order in self.ledger.orders(
            self.account,
            states=[OrderState.SUBMITTED, OrderState.ACCEPTED, OrderState.PARTIALLY_FILLED],
        ):
            if order.state is OrderState.SUBMITTED:
                if order.lease_until is not None and order.lease_until > now:
                    continue
                results.append(self._advance(order))
                continue
            found = self._ask_venue(order)
            if isinstance(found, Order):
                results.append(self._record(order, found))
        return results
