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
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from kyperian import __version__
from kyperian.domain.errors import KyperianError
from kyperian.engine.api.deps import ClockDep, ServicesDep
from kyperian.engine.auth.deps import csrf_token
from kyperian.engine.services import EngineServices
from kyperian.engine.ui.views import (
    Readers,
    Venue,
    board_view,
    chart_view,
    feed_view,
    health_view,
)

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
            )
        }
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
