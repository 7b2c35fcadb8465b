"""``GET /broker/paper/...``: the simulated account's positions and balances.

Live venues get their own prefixes (``/broker/alpaca``, ``/broker/ibkr``, and
``/broker/tda`` served by the Schwab API) when their adapters exist.
"""

from __future__ import annotations

from fastapi import APIRouter

from kyperian.domain.brokers import Account, Position
from kyperian.engine.api.deps import PaperBrokerDep

router = APIRouter(prefix="/broker/paper", tags=["broker"])


@router.get("/positions", response_model=list[Position])
def paper_positions(broker: PaperBrokerDep) -> list[Position]:
    return broker.positions()


@router.get("/account", response_model=Account)
def paper_account(broker: PaperBrokerDep) -> Account:
    return broker.account()
