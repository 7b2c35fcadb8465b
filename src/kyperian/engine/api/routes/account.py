"""``GET /account`` and the kill switch: ``POST /halt`` (optionally flattening), ``POST /resume``.

The switch is a field of the account in the ledger, read by every task on every order, so
all tasks see it at once (well inside the two seconds asked).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kyperian.engine.api.deps import ExecutionDep, ServicesDep
from kyperian.engine.api.schemas import AccountView, HaltResult
from kyperian.engine.services import EngineServices
from kyperian.execution import OrderExecutor

router = APIRouter(tags=["account"])


def _view(services: EngineServices, execution: OrderExecutor) -> AccountView:
    book = execution.book()
    return AccountView(
        venue=book.account.key.venue,
        account_id=book.account.key.account_id,
        currency=book.account.currency,
        cash=book.account.cash,
        equity=book.equity(),
        halted=book.account.halted,
        halt_reason=book.account.halt_reason,
        halted_at=book.account.halted_at,
        auto_trading=services.settings.auto_trading,
        approval_mode=services.settings.approval_mode,
        open_orders=len(book.open_orders),
    )


@router.get("/account", response_model=AccountView)
def account(services: ServicesDep, execution: ExecutionDep) -> AccountView:
    return _view(services, execution)


@router.post("/halt", response_model=HaltResult)
def halt(
    services: ServicesDep,
    execution: ExecutionDep,
    flatten: Annotated[bool, Query(description="also close every position")] = False,
    reason: Annotated[str, Query(min_length=1, max_length=200)] = "halted by an operator",
) -> HaltResult:
    """Stop every new order on the account; with ``flatten``, close every position too."""
    placed = execution.halt(reason, flatten=flatten)
    services.processor.metrics.halted(reason)
    return HaltResult(account=_view(services, execution), flatten_orders=[e.order for e in placed])


@router.post("/resume", response_model=AccountView)
def resume(services: ServicesDep, execution: ExecutionDep) -> AccountView:
    """Let orders flow again."""
    execution.resume()
    return _view(services, execution)
