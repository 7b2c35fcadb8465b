"""``GET /decisions/{symbol}`` (latest: cache, then table) and ``.../history`` (table)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from kyperian.domain.decisions import Decision
from kyperian.domain.errors import KyperianError
from kyperian.engine.api.deps import CacheDep, CircuitDep, DecisionsDep, SymbolDep
from kyperian.engine.api.schemas import DecisionPage

router = APIRouter(prefix="/decisions", tags=["decisions"])


@router.get("/{symbol:path}/history", response_model=DecisionPage)
def decision_history(
    symbol: SymbolDep,
    decisions: DecisionsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        datetime | None, Query(description="only decisions made before this time")
    ] = None,
) -> DecisionPage:
    page = decisions.history(symbol, limit=limit, before=before)
    next_before = page[-1].sort_time if len(page) == limit else None
    return DecisionPage(symbol=symbol, decisions=page, next_before=next_before)


@router.get(
    "/{symbol:path}",
    response_model=Decision,
    responses={404: {"description": "no decision stored for this symbol"}},
)
def latest_decision(
    symbol: SymbolDep, cache: CacheDep, decisions: DecisionsDep, circuit: CircuitDep
) -> Decision:
    if circuit.should_try():
        try:
            cached = cache.latest_decision(symbol)
        except KyperianError:
            cached = None
        if cached is not None:
            return cached
    stored = decisions.latest(symbol)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no decision for {symbol}")
    return stored
