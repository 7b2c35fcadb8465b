"""``GET /positions``: the ledger's positions (what every engine task trades against)."""

from __future__ import annotations

from fastapi import APIRouter

from kyperian.engine.api.deps import ExecutionDep
from kyperian.execution import LedgerPosition

router = APIRouter(tags=["positions"])


@router.get("/positions", response_model=list[LedgerPosition])
def list_positions(execution: ExecutionDep) -> list[LedgerPosition]:
    """Every non-flat position: signed quantity, average price, realized P&L, last price."""
    return [p for p in execution.book().positions if p.quantity != 0]
