"""``GET /signals/{symbol}``: the fresh signals the engine would fuse now (cache, else table)."""

from __future__ import annotations

from fastapi import APIRouter

from kyperian.domain.errors import KyperianError
from kyperian.engine.api.deps import CacheDep, CircuitDep, ClockDep, HistoryDep, RulesDep, SymbolDep
from kyperian.engine.api.schemas import SignalsView
from kyperian.fusion import fresh_signals

router = APIRouter(prefix="/signals", tags=["signals"])


@router.get("/{symbol:path}", response_model=SignalsView)
def signals_of(
    symbol: SymbolDep,
    cache: CacheDep,
    history: HistoryDep,
    circuit: CircuitDep,
    rules: RulesDep,
    clock: ClockDep,
) -> SignalsView:
    now = clock()
    if circuit.should_try():
        try:
            cached = cache.latest_signals(symbol)
            return SignalsView(
                symbol=symbol, source="cache", signals=fresh_signals(cached, rules, now)
            )
        except KyperianError:
            pass  # answer from the table, as the worker does in degraded mode
    stored = history.recent(symbol, now)
    return SignalsView(symbol=symbol, source="table", signals=fresh_signals(stored, rules, now))
