"""Engine authentication: a bearer token for machines, a session cookie for people.

``install_auth(app)`` puts the gate in front of the whole app and adds the login routes;
routes and templates read the caller and the CSRF token through ``CallerDep`` and
``CsrfTokenDep``. See docs/security.md ("Engine authentication").
"""

from __future__ import annotations

from fastapi import FastAPI

from kyperian.engine.auth.credentials import SESSION_COOKIE, AuthUnavailable, EngineAuth
from kyperian.engine.auth.deps import CallerDep, CsrfTokenDep, csrf_token, current_caller
from kyperian.engine.auth.middleware import CSRF_FIELD, CSRF_HEADER, OPEN_ROUTES, AuthMiddleware
from kyperian.engine.auth.routes import router

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "OPEN_ROUTES",
    "SESSION_COOKIE",
    "AuthUnavailable",
    "CallerDep",
    "CsrfTokenDep",
    "EngineAuth",
    "csrf_token",
    "current_caller",
    "install_auth",
]


def install_auth(app: FastAPI) -> None:
    """Protect every route of ``app``, present and future, and serve ``/login``/``/logout``."""
    app.state.engine_auth = None
    app.add_middleware(AuthMiddleware)
    app.include_router(router)
