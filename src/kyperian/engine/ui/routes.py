"""``/ui``: the trader's cockpit, server-rendered, one template per panel.

``GET /ui`` renders every panel; ``GET /ui/panels/<name>`` renders one, as a fragment
for htmx (``HX-Request`` header: the panel replaces itself every few seconds, which is
the "live" in live feed) or, opened directly, as a page of its own. Routes only gather
what the views compute; the pages hold no state of their own and no script but htmx,
the chart, and ``cockpit.js`` (which draws the chart from data the server rendered).
Every static file is vendored under ``static/``: no CDN.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from kyperian import __version__
from kyperian.adapters.notify.orders import halt_notice, order_notice
from kyperian.domain.errors import InvalidOrderError, KyperianError
from kyperian.engine.api.deps import ClockDep, ServicesDep
from kyperian.engine.auth.deps import CallerDep, csrf_token
from kyperian.engine.services import EngineServices
from kyperian.engine.telemetry import logger
from kyperian.engine.ui.views import (
    Readers,
    Venue,
    board_view,
    chart_view,
    feed_view,
    health_view,
    ledger_view,
)
from kyperian.execution import Execution, IllegalTransition, LedgerOrder, OrderExecutor

HERE: Final = Path(__file__).parent
CHART_SCRIPT: Final = HERE / "static/vendor/lightweight-charts-5.2.1.standalone.production.js"
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")
router = APIRouter(prefix="/ui", tags=["cockpit"], include_in_schema=False)

SymbolQuery = Annotated[
    str | None, Query(max_length=40, pattern=r"^[A-Za-z0-9._:!/-]*$", description="one symbol")
]


def _chart_logo_style_hash() -> str:
    """CSP hash of the one ``<style>`` the chart library writes (its attribution logo's)."""
    found = re.search(r'innerText="(a#tv-attr-logo\{[^"]*)"', CHART_SCRIPT.read_text())
    if found is None:
        return ""
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f" 'sha256-{base64.b64encode(digest).decode()}'"


PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    # Everything from this origin, no inline script, no eval (htmx's is off: see base.html).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; "
        f"style-src 'self'{_chart_logo_style_hash()}; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _readers(services: EngineServices) -> Readers:
    return Readers(
        symbols=services.symbols,
        feed=services.feed,
        cache=services.cache,
        decisions=services.decisions,
        history=services.history,
        circuit=services.circuit,
        rules=services.rules,
    )


def _venues(services: EngineServices) -> list[Venue]:
    broker = services.broker
    try:
        broker.check()
    except KyperianError as exc:
        return [Venue(broker.name, False, str(exc))]
    return [Venue(broker.name, True, "connected")]


def _symbol(symbol: str | None) -> str | None:
    return symbol.strip().upper() or None if symbol else None


def _marks(readers: Readers) -> Callable[[str], Decimal | None]:
    """A symbol's mark price: its latest decision's price (cache, else table), if any."""

    def mark(symbol: str) -> Decimal | None:
        try:
            decision = readers.cache.latest_decision(symbol) or readers.decisions.latest(symbol)
        except KyperianError:
            return None
        if decision is None or decision.price is None:
            return None
        return Decimal(str(decision.price))

    return mark


def _first_symbol(readers: Readers) -> str | None:
    if readers.symbols is None:
        return None
    try:
        return next(iter(readers.symbols.symbols()), None)
    except KyperianError:
        return None


def _panel(name: str, services: EngineServices, clock: ClockDep, symbol: str | None) -> Any:
    """The context of one panel."""
    readers = _readers(services)
    if name == "board":
        return {"board": board_view(readers, clock()), "selected": symbol}
    if name == "feed":
        return {"feed": feed_view(readers, symbol)}
    if name == "health":
        worker = services.worker
        return {
            "health": health_view(
                readers,
                queue_depth=services.queue_depth,
                worker=worker.state.value if worker else "DISABLED",
                venues=_venues(services),
                notify_channels=services.notifier.channels if services.notifier else (),
                alarm_watch=services.alarms.status if services.alarms else None,
            )
        }
    if name == "ledger":
        return {"ledger": ledger_view(services.execution, _marks(readers))}
    if name == "chart":
        chosen = symbol or _first_symbol(readers)
        return {"chart": chart_view(readers, chosen) if chosen else None}
    return {}


PANELS: Final = ("board", "feed", "chart", "health", "ledger")


def _render(request: Request, template: str, context: dict[str, Any]) -> HTMLResponse:
    """Render with what every page needs: the version and the session's CSRF token."""
    return templates.TemplateResponse(
        request,
        template,
        {"version": __version__, "csrf_token": csrf_token(request), **context},
        headers=PAGE_HEADERS,
    )


@router.get("", response_class=HTMLResponse)
def cockpit(
    request: Request, services: ServicesDep, clock: ClockDep, symbol: SymbolQuery = None
) -> HTMLResponse:
    """Every panel on one page."""
    chosen = _symbol(symbol)
    context: dict[str, Any] = {"selected": chosen}
    for name in PANELS:
        context |= _panel(name, services, clock, chosen)
    context["selected"] = chosen
    return _render(request, "cockpit.html", context)


def _panel_route(name: str) -> None:
    def panel(
        request: Request, services: ServicesDep, clock: ClockDep, symbol: SymbolQuery = None
    ) -> HTMLResponse:
        chosen = _symbol(symbol)
        context = {"selected": chosen, **_panel(name, services, clock, chosen)}
        fragment = request.headers.get("HX-Request") == "true"
        template = f"panels/{name}.html" if fragment else "panel_page.html"
        return _render(request, template, {**context, "panel": name})

    panel.__name__ = f"{name}_panel"
    panel.__doc__ = f"The {name} panel: a fragment for htmx, or a page of its own."
    router.add_api_route(f"/panels/{name}", panel, methods=["GET"], response_class=HTMLResponse)


for _name in PANELS:
    _panel_route(_name)


# --- actions: approve, reject, halt (and flatten), resume (POST forms; CSRF checked app-wide) ---

OrderId = Annotated[str, Path_(pattern=r"^[A-Za-z0-9_.:-]{1,48}$", description="client order id")]


def _after_action(
    request: Request, services: EngineServices, clock: ClockDep, message: str, failed: bool
) -> Response:
    """The refreshed ledger panel for htmx; a redirect back to the cockpit for a plain form."""
    if request.headers.get("HX-Request") != "true":
        return RedirectResponse("/ui#ledger", status_code=status.HTTP_303_SEE_OTHER)
    context = {"panel": "ledger", "message": message, "failed": failed}
    context |= _panel("ledger", services, clock, None)
    response = _render(request, "panels/ledger.html", context)
    response.status_code = status.HTTP_409_CONFLICT if failed else status.HTTP_200_OK
    return response


def _executor(services: EngineServices) -> OrderExecutor:
    if services.execution is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the execution ledger is not installed")
    return services.execution


@router.post("/orders/{client_order_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, client_order_id: OrderId, services: ServicesDep, clock: ClockDep,
    caller: CallerDep,
) -> Response:  # fmt: skip
    """A person approves a pending order: it goes to the venue now."""
    executor = _executor(services)
    try:
        execution = executor.approve(client_order_id)
    except (IllegalTransition, InvalidOrderError) as exc:
        return _after_action(request, services, clock, f"not approved: {exc}", failed=True)
    logger.info(
        "order approved from the cockpit",
        extra={"client_order_id": client_order_id, "caller": caller, "kind": execution.kind.value},
    )
    _tell(services, execution.order)
    state = execution.order.state.value.replace("_", " ").lower()
    return _after_action(request, services, clock, f"approved: the order is {state}", False)


@router.post("/orders/{client_order_id}/reject", response_class=HTMLResponse)
def reject(
    request: Request, client_order_id: OrderId, services: ServicesDep, clock: ClockDep,
    caller: CallerDep,
) -> Response:  # fmt: skip
    """A person rejects a pending order: it is never sent."""
    executor = _executor(services)
    try:
        order = executor.reject(client_order_id, reason=f"rejected in the cockpit ({caller})")
    except (IllegalTransition, InvalidOrderError) as exc:
        return _after_action(request, services, clock, f"not rejected: {exc}", failed=True)
    logger.info(
        "order rejected from the cockpit",
        extra={"client_order_id": client_order_id, "caller": caller},
    )
    _tell(services, order)
    return _after_action(request, services, clock, "rejected: the order will not be sent", False)


@router.post("/halt", response_class=HTMLResponse)
def halt(request: Request, services: ServicesDep, clock: ClockDep, caller: CallerDep) -> Response:
    """The kill switch: no order leaves the engine for this account until resumed."""
    return _switch(request, services, clock, caller, halted=True)


@router.get("/halt/flatten", response_class=HTMLResponse)
def confirm_flatten(request: Request, services: ServicesDep, clock: ClockDep) -> HTMLResponse:
    """Halt-and-flatten's confirmation: the positions it would close and the button that does.

    Changes nothing. A server-rendered second step, so confirming needs no script (the
    pages allow none inline); it keeps refreshing itself, so the list stays current.
    """
    _executor(services)
    context = {
        "panel": "ledger",
        "confirm_flatten": True,
        **_panel("ledger", services, clock, None),
    }
    fragment = request.headers.get("HX-Request") == "true"
    return _render(request, "panels/ledger.html" if fragment else "panel_page.html", context)


@router.post("/halt/flatten", response_class=HTMLResponse)
def halt_and_flatten(
    request: Request, services: ServicesDep, clock: ClockDep, caller: CallerDep
) -> Response:
    """The confirmed kill switch with flatten: halt, then close every position at market."""
    return _switch(request, services, clock, caller, halted=True, flatten=True)


@router.post("/resume", response_class=HTMLResponse)
def resume(request: Request, services: ServicesDep, clock: ClockDep, caller: CallerDep) -> Response:
    """Release the kill switch."""
    return _switch(request, services, clock, caller, halted=False)


def _switch(
    request: Request,
    services: EngineServices,
    clock: ClockDep,
    caller: str,
    halted: bool,
    flatten: bool = False,
) -> Response:
    executor = _executor(services)
    reason = None
    if halted:
        reason = f"halted{' and flattened' if flatten else ''} in the cockpit by {caller}"
    placed: list[Execution] = []
    problem = None
    if reason is None:
        executor.resume()
    elif not flatten:
        executor.halt(reason)
    else:
        try:
            placed = executor.halt(reason, flatten=True)
        except KyperianError as exc:  # halted already; some closing orders may be out
            problem = str(exc)
    logger.warning(
        "kill switch thrown" if halted else "kill switch released",
        extra={
            "account": str(executor.account),
            "caller": caller,
            "flatten": flatten,
            "flatten_orders": [e.order.client_order_id for e in placed],
            "flatten_problem": problem,
        },
    )
    if services.notifier is not None:
        services.notifier.submit(halt_notice(str(executor.account), halted, reason, clock()))
    for execution in placed:
        _tell(services, execution.order)
    return _after_action(
        request,
        services,
        clock,
        _switch_words(halted, placed, problem, flatten),
        problem is not None,
    )


def _switch_words(halted: bool, placed: list[Execution], problem: str | None, flatten: bool) -> str:
    """What the panel says after the switch: halted or resumed, and what flatten did."""
    if not halted:
        return "trading resumed"
    if problem is not None:
        return (
            f"trading halted, but closing the positions failed: {problem}. "
            "Check the orders below, then retry"
        )
    if not flatten:
        return "trading halted: no order will be sent"
    closing = ", ".join(
        f"{e.order.side.value} {e.order.quantity} {e.order.symbol} "
        f"({e.order.state.value.replace('_', ' ').lower()})"
        for e in placed
    )
    return f"trading halted; closing every position: {closing or 'there was none'}"


def _tell(services: EngineServices, order: LedgerOrder) -> None:
    notice = order_notice(order, order.updated_at)
    if notice is not None and services.notifier is not None:
        services.notifier.submit(notice)
