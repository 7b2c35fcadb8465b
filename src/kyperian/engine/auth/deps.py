"""What routes and templates may ask of the authentication: the caller, the CSRF token.

The middleware has already admitted the request when a route runs; these dependencies only
read what it left in ``request.state``. ``engine_auth_of`` builds the ``EngineAuth`` once
per app from the engine's settings (tests may put their own on ``app.state.engine_auth``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from starlette.applications import Starlette

from kyperian.engine.auth.credentials import AuthUnavailable, EngineAuth


def engine_auth_of(app: Starlette) -> EngineAuth:
    """The app's ``EngineAuth``, built from its services' settings on first use.

    Raises ``AuthUnavailable`` while the engine has no settings yet (still starting).
    """
    auth: EngineAuth | None = getattr(app.state, "engine_auth", None)
    if auth is not None:
        return auth
    services = getattr(app.state, "services", None)
    if services is None:
        raise AuthUnavailable
    auth = EngineAuth.from_settings(services.settings)
    app.state.engine_auth = auth
    return auth


def get_engine_auth(request: Request) -> EngineAuth:
    try:
        return engine_auth_of(request.app)
    except AuthUnavailable:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "engine is starting") from None


def current_caller(request: Request) -> str:
    """``bearer:current``, ``bearer:previous``, ``session:<id prefix>`` or ``anonymous``."""
    return str(getattr(request.state, "caller", "anonymous"))


def csrf_token(request: Request) -> str:
    """The CSRF token a page must put in its forms (``csrf_token``) or htmx headers
    (``X-CSRF-Token``); empty for bearer callers, who need none."""
    return str(getattr(request.state, "csrf_token", ""))


EngineAuthDep = Annotated[EngineAuth, Depends(get_engine_auth)]
CallerDep = Annotated[str, Depends(current_caller)]
CsrfTokenDep = Annotated[str, Depends(csrf_token)]
