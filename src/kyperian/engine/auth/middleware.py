"""App-wide gate and access log: every request needs a caller, and every request is logged.

A pure ASGI middleware around the whole app, so everything added later (routers, mounted
static files, ``/docs``, ``/openapi.json``, websockets) is protected without doing anything.
Only ``GET /health`` (the ALB's check) and the login page are open.

- ``Authorization: Bearer <token>`` (machines, the CLI): no CSRF token needed. A wrong
  bearer token is refused even if a valid cookie is present too.
- ``kyperian_session`` cookie (people): state-changing methods must also carry the CSRF
  token, in ``X-CSRF-Token`` or in a urlencoded form field ``csrf_token``.
- Otherwise: 401 JSON with ``WWW-Authenticate: Bearer`` (the body never says what was
  wrong), or a redirect to ``/login`` for a browser asking for an HTML page. When the token
  cannot be read: 503, never open.

One JSON log line per request: method, path (never the query string), status, latency,
caller, client address; never a token, a cookie or a query value.
"""

from __future__ import annotations

import ipaddress
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kyperian.domain.ports import SecretMatch, same_secret
from kyperian.engine.auth.credentials import SESSION_COOKIE, AuthUnavailable, Session
from kyperian.engine.auth.deps import engine_auth_of
from kyperian.engine.telemetry import EngineMetrics, logger

OPEN_ROUTES: Final = frozenset(
    {
        ("GET", "/health"),
        ("HEAD", "/health"),
        ("GET", "/login"),
        ("HEAD", "/login"),
        ("POST", "/login"),
        ("GET", "/ui/static/login.css"),  # the sign-in page's style (docs/cockpit.md)
        ("HEAD", "/ui/static/login.css"),
    }
)
"""(method, path) pairs served without a caller: the health check, the login page, its style."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf_token"
MAX_FORM_BYTES: Final = 1024 * 1024
_UNAUTHENTICATED: Final = {"detail": "authentication required"}
_WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="kyperian-engine"'}
_MAX_LOGGED_PATH: Final = 512


@dataclass
class _Admission:
    """The gate's verdict on one request."""

    caller: str = "anonymous"
    refusal: Response | None = None
    refused: str | None = None
    csrf_token: str = ""


class AuthMiddleware:
    """Admit or refuse each request, then log it (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._metrics: EngineMetrics | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status == 0:
                status = 403
            await send(message)

        admission = _Admission()
        try:
            admission, receive = await self._admit(scope, receive)
            if admission.refusal is not None:
                self._count_refusal(scope, admission.refused or "unauthenticated")
                await _refuse(admission.refusal, scope, receive, recording_send)
                return
            state = {
                **scope.get("state", {}),
                "caller": admission.caller,
                "csrf_token": admission.csrf_token,
            }
            scope["state"] = state
            await self.app(scope, receive, recording_send)
            # POST /login names its new session, or refuses a token, through request.state
            admission.caller = str(state.get("caller", admission.caller))
            if state.get("refused"):
                admission.refused = str(state["refused"])
                self._count_refusal(scope, admission.refused)
        except Exception:
            status = status or 500
            raise
        finally:
            _log_access(scope, status or 500, started, admission)

    async def _admit(self, scope: Scope, receive: Receive) -> tuple[_Admission, Receive]:
        method = "GET" if scope["type"] == "websocket" else scope["method"]
        if (method, scope["path"]) in OPEN_ROUTES and scope["type"] == "http":
            return _Admission(), receive
        headers = Headers(scope=scope)
        try:
            auth = engine_auth_of(scope["app"])
            authorization = headers.get("authorization")
            if authorization is not None:
                return await _bearer(authorization, auth.check_token, scope), receive
            cookie = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
            session = await run_in_threadpool(auth.session, cookie) if cookie else None
        except AuthUnavailable:
            unavailable = JSONResponse(
                {"detail": "authentication is unavailable; retry shortly"},
                status_code=503,
                headers={"Retry-After": "2"},
            )
            return _Admission(refusal=unavailable, refused="unavailable"), receive
        if session is None:
            refusal = _unauthenticated(scope, headers, clear_cookie=cookie is not None)
            return _Admission(refusal=refusal, refused="unauthenticated"), receive
        if method in SAFE_METHODS or scope["type"] == "websocket":
            return _Admission(session.caller, csrf_token=session.csrf_token), receive
        return await _check_csrf(scope, receive, headers, session)

    def _count_refusal(self, scope: Scope, reason: str) -> None:
        if self._metrics is None:
            services = getattr(scope["app"].state, "services", None)
            if services is None:
                return
            self._metrics = EngineMetrics(services.settings.environment)
        self._metrics.refused(reason)


async def _bearer(
    authorization: str, check: Callable[[str], SecretMatch | None], scope: Scope
) -> _Admission:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        matched = await run_in_threadpool(check, token.strip())
        if matched is not None:
            return _Admission(f"bearer:{matched.value}")
    refusal = _unauthenticated(scope, Headers(scope=scope), clear_cookie=False)
    return _Admission(refusal=refusal, refused="unauthenticated")


async def _check_csrf(
    scope: Scope, receive: Receive, headers: Headers, session: Session
) -> tuple[_Admission, Receive]:
    """A cookie-authenticated change must prove it came from our own page."""
    admitted = _Admission(session.caller, csrf_token=session.csrf_token)
    presented = headers.get(CSRF_HEADER)
    if presented is None and _is_urlencoded_form(headers):
        body = await _read_body(receive)
        if body is None:
            too_large = JSONResponse({"detail": "form body too large"}, status_code=413)
            return _Admission(session.caller, refusal=too_large, refused="csrf"), receive
        receive = _replay(body, receive)
        fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=1000)
        presented = next(iter(fields.get(CSRF_FIELD, [])), None)
    if presented is not None and same_secret(presented, session.csrf_token):
        return admitted, receive
    forbidden = JSONResponse({"detail": "CSRF token missing or invalid"}, status_code=403)
    return _Admission(session.caller, refusal=forbidden, refused="csrf"), receive


def _is_urlencoded_form(headers: Headers) -> bool:
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/x-www-form-urlencoded"


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or ``None`` beyond ``MAX_FORM_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the real channel."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _unauthenticated(scope: Scope, headers: Headers, clear_cookie: bool) -> Response:
    """A browser asking for a page goes to the login form; anything else gets 401."""
    response: Response
    wants_page = scope["type"] == "http" and scope["method"] in ("GET", "HEAD")
    if wants_page and "text/html" in headers.get("accept", ""):
        query = scope["query_string"].decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        response = RedirectResponse(
            "/login?" + urllib.parse.urlencode({"next": target}), status_code=303
        )
    else:
        response = JSONResponse(_UNAUTHENTICATED, status_code=401, headers=_WWW_AUTHENTICATE)
    if clear_cookie:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _refuse(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    await response(scope, receive, send)


def client_ip(scope: Scope) -> str:
    """The caller's address: the last ``X-Forwarded-For`` entry, the one the ALB appended
    (earlier entries are whatever the client claimed), else the socket's peer."""
    forwarded = Headers(scope=scope).get("x-forwarded-for")
    candidate = forwarded.split(",")[-1].strip() if forwarded else None
    if candidate is None:
        client = scope.get("client")
        candidate = str(client[0]) if client else ""
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return "unknown"


def _log_access(scope: Scope, status: int, started: float, admission: _Admission) -> None:
    record: dict[str, object] = {
        "method": "WEBSOCKET" if scope["type"] == "websocket" else scope["method"],
        "path": scope["path"][:_MAX_LOGGED_PATH],
        "status": status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
        "caller": admission.caller,
        "client_ip": client_ip(scope),
    }
    if admission.refused is not None:
        record["refused"] = admission.refused
    logger.info("engine access", extra=record)
