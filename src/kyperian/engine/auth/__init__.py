"""Engine authentication: a bearer token for machines, a session cookie for people.

``install_auth(app)`` puts the gate in front of the whole app and adds the login routes;
routes and templates read the caller and the CSRF token through ``CallerDep`` and
``CsrfTokenDep``. See docs/security.md ("Engine authentication").
"""

from __future__ import annotations

from typing import Any

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
    _document_bearer(app)


def _document_bearer(app: FastAPI) -> None:
    """Say in the OpenAPI document that every operation but the open ones needs the token,
    so ``/docs`` offers "Authorize" and its "Try it out" sends the token (no CSRF needed)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[_SCHEME] = {"type": "http", "scheme": "bearer", "description": _SCHEME_HELP}
        schema["security"] = [{_SCHEME: []}]
        for method, path in OPEN_ROUTES:
            operation = schema.get("paths", {}).get(path, {}).get(method.lower())
            if operation is not None:
                operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_SCHEME = "engineToken"
_SCHEME_HELP = "The engine token (KYPERIAN_ENGINE_TOKEN, or /kyperian/<env>/engine/token)."
