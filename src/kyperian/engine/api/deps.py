"""Dependencies of the routes, as ``Annotated`` aliases so handlers stay one-liners.

Everything comes from the ``EngineServices`` the lifespan put on ``app.state``; tests
hand their own services to ``create_app``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from kyperian.adapters.brokers.paper import PaperBroker
from kyperian.adapters.brokers.venues import Venues
from kyperian.domain.engine_ports import DecisionStore, SignalCache, SignalHistory
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.services import EngineServices
from kyperian.execution import OrderExecutor
from kyperian.fusion import FusionRules


def get_services(request: Request) -> EngineServices:
    services: EngineServices | None = getattr(request.app.state, "services", None)
    if services is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "engine is starting")
    return services


ServicesDep = Annotated[EngineServices, Depends(get_services)]


def get_cache(services: ServicesDep) -> SignalCache:
    return services.cache


def get_decisions(services: ServicesDep) -> DecisionStore:
    return services.decisions


def get_history(services: ServicesDep) -> SignalHistory:
    return services.history


def get_circuit(services: ServicesDep) -> CacheCircuit:
    return services.circuit


def get_rules(services: ServicesDep) -> FusionRules:
    return services.rules


def get_paper_broker(services: ServicesDep) -> PaperBroker:
    return services.broker


def get_execution(services: ServicesDep) -> OrderExecutor:
    if services.execution is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no ledger configured")
    return services.execution


def get_venues(services: ServicesDep) -> Venues:
    return services.venues


def get_clock() -> Callable[[], datetime]:
    return lambda: datetime.now(UTC)


def normalized_symbol(symbol: str) -> str:
    """Symbols are stored upper-case, as the validator normalizes them."""
    return symbol.strip().upper()


CacheDep = Annotated[SignalCache, Depends(get_cache)]
DecisionsDep = Annotated[DecisionStore, Depends(get_decisions)]
HistoryDep = Annotated[SignalHistory, Depends(get_history)]
CircuitDep = Annotated[CacheCircuit, Depends(get_circuit)]
RulesDep = Annotated[FusionRules, Depends(get_rules)]
PaperBrokerDep = Annotated[PaperBroker, Depends(get_paper_broker)]
ExecutionDep = Annotated[OrderExecutor, Depends(get_execution)]
VenuesDep = Annotated[Venues, Depends(get_venues)]
ClockDep = Annotated[Callable[[], datetime], Depends(get_clock)]
SymbolDep = Annotated[str, Depends(normalized_symbol)]
