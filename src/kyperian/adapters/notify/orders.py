"""Notices about orders and the kill switch, built from the execution ledger's records.

The execution core reports what happened to an order (``Execution``); this turns it into
a ``Notice`` in words and hands it to the dispatcher, so order news reaches the same
channels, with the same filters, retries and dead letters, as decisions do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from kyperian.adapters.notify.dispatcher import NotificationDispatcher
from kyperian.domain.notices import Notice, NoticeKind, notice_id
from kyperian.execution import Execution, LedgerOrder, Mismatch, OrderState

_KIND_OF_STATE: Final = {
    OrderState.PENDING_APPROVAL: NoticeKind.ORDER_PENDING_APPROVAL,
    OrderState.SUBMITTED: NoticeKind.ORDER_SUBMITTED,
    OrderState.ACCEPTED: NoticeKind.ORDER_SUBMITTED,
    OrderState.PARTIALLY_FILLED: NoticeKind.ORDER_FILLED,
    OrderState.FILLED: NoticeKind.ORDER_FILLED,
    OrderState.REJECTED: NoticeKind.ORDER_REJECTED,
    OrderState.CANCELLED: NoticeKind.ORDER_REJECTED,
    OrderState.EXPIRED: NoticeKind.ORDER_REJECTED,
}


def order_notice(order: LedgerOrder, at: datetime) -> Notice | None:
    """The order's news, or None for an intent (nothing has left the engine yet)."""
    kind = _KIND_OF_STATE.get(order.state)
    if kind is None:
        return None
    state = order.state.value.replace("_", " ").lower()
    title = f"{order.symbol}: {order.side.value} {order.quantity} {state}"
    lines = [f"order {order.client_order_id} ({order.order_type.value.lower()})"]
    if order.filled_quantity:
        price = f" at {order.average_fill_price}" if order.average_fill_price else ""
        lines.append(f"filled {order.filled_quantity} of {order.quantity}{price}")
    if order.state is OrderState.PENDING_APPROVAL:
        until = f" before {order.expires_at:%H:%M} UTC" if order.expires_at else ""
        lines.append(f"waiting for approval in the cockpit (/ui){until}")
    if order.reason:
        lines.append(f"reason: {order.reason}")
    return Notice(
        notice_id=notice_id("order", order.client_order_id, order.state.value, str(order.version)),
        kind=kind,
        symbol=order.symbol,
        title=title[:100],
        text="\n".join(lines)[:1800],
        at=at,
    )


def halt_notice(account: str, halted: bool, reason: str | None, at: datetime) -> Notice:
    """The kill switch was thrown or released."""
    title = f"{account}: trading {'HALTED' if halted else 'resumed'}"
    return Notice(
        notice_id=notice_id("halt", account, str(halted), at.isoformat()),
        kind=NoticeKind.HALT,
        title=title[:100],
        text=(reason or ("no order leaves the engine" if halted else "orders flow again"))[:1800],
        at=at,
    )


def mismatch_notice(account: str, mismatches: list[Mismatch], reason: str, at: datetime) -> Notice:
    """Ledger and venue disagree; the account was halted until a person decides."""
    lines = [f"{m.kind} {m.subject}: ledger {m.ledger}, venue {m.venue}" for m in mismatches[:10]]
    lines.append("trading is halted on the account; see runbooks/reconciliation-mismatch.md")
    return Notice(
        notice_id=notice_id("mismatch", account, reason),
        kind=NoticeKind.RECONCILIATION_MISMATCH,
        title=f"{account}: ledger and venue disagree, trading HALTED"[:100],
        text="\n".join(lines)[:1800],
        at=at,
    )


class MismatchNotifier:
    """What the reconciler calls after a mismatch halted the account."""

    def __init__(self, dispatcher: NotificationDispatcher) -> None:
        self._dispatcher = dispatcher

    def __call__(self, account: str, mismatches: list[Mismatch], reason: str) -> None:
        self._dispatcher.submit(mismatch_notice(account, mismatches, reason, datetime.now(UTC)))


class OrderNotifier:
    """What the processor calls with each order outcome: one notice, off the decision path."""

    def __init__(self, dispatcher: NotificationDispatcher) -> None:
        self._dispatcher = dispatcher

    def __call__(self, execution: Execution) -> None:
        notice = order_notice(execution.order, execution.order.updated_at)
        if notice is not None:
            self._dispatcher.submit(notice)
