"""``GET /orders`` (the ledger's orders) and approving or rejecting a pending one.

Thin: the lifecycle rules are ``kyperian.execution``; a move the state machine forbids is
a 409 naming the order's state, an unknown order a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from kyperian.domain.errors import InvalidOrderError
from kyperian.engine.api.deps import ExecutionDep
from kyperian.execution import IllegalTransition, LedgerOrder, OrderState

router = APIRouter(prefix="/orders", tags=["orders"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such order"},
    409: {
        "description": "the order is not waiting for approval (its state is named), or "
        "trading is halted (the halt's reason is named; the order stays pending)"
    },
}


@router.get("", response_model=list[LedgerOrder])
def list_orders(
    execution: ExecutionDep,
    symbol: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    state: Annotated[OrderState | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[LedgerOrder]:
    """Orders of the account, each naming its decision and client order id.

    A pending order past its approval time is shown (and recorded) as EXPIRED.
    """
    wanted = symbol.strip().upper() if symbol else None
    return execution.orders(symbol=wanted, states=[state] if state else None, limit=limit)


@router.post("/{order_id}/approve", response_model=LedgerOrder, responses=_ERRORS)
def approve_order(order_id: str, execution: ExecutionDep) -> LedgerOrder:
    """Send a pending order to the venue now."""
    try:
        return execution.approve(order_id).order
    except InvalidOrderError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post("/{order_id}/reject", response_model=LedgerOrder, responses=_ERRORS)
def reject_order(order_id: str, execution: ExecutionDep) -> LedgerOrder:
    """Refuse a pending order; it is recorded REJECTED and never reaches the venue."""
    try:
        return execution.reject(order_id)
    except InvalidOrderError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except IllegalTransition as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
