"""``GET/POST /login`` and ``POST /logout``: the engine token exchanged for a session cookie.

People use the dashboard with a browser, which cannot hold a bearer token for them: they
paste the token once into the login form and get a signed, expiring session cookie
(HttpOnly, SameSite=Strict, Secure except over plain http on localhost). The page here is
deliberately bare; the dashboard restyles it. The token is never echoed or logged.
"""

from __future__ import annotations

import html
import urllib.parse
from typing import Final

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kyperian.engine.auth.credentials import SESSION_COOKIE, AuthUnavailable, IssuedSession
from kyperian.engine.auth.deps import CallerDep, EngineAuthDep

HOME: Final = "/ui"
"""Where a login without a ``next`` page lands (the dashboard)."""
MAX_LOGIN_BYTES: Final = 8 * 1024
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["auth"])


@router.get("/login", response_class=HTMLResponse)
def login_page(next: str = HOME) -> HTMLResponse:
    """The sign-in form (open: it is how a person gets a session)."""
    return _page(_safe_next(next), message="", status_code=status.HTTP_200_OK)


@router.post(
    "/login",
    responses={
        303: {"description": "signed in: redirect to `next` (browsers)"},
        401: {"description": "the token was not accepted"},
    },
)
async def login(request: Request, auth: EngineAuthDep) -> Response:
    """Form fields ``token`` and ``next``. ``Accept: application/json`` gets the CSRF token
    as JSON instead of a redirect."""
    form = await _form(request)
    target = _safe_next(form.get("next", HOME))
    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        matched = await run_in_threadpool(auth.check_token, form.get("token"))
        issued = await run_in_threadpool(auth.issue_session) if matched else None
    except AuthUnavailable:
        return JSONResponse(
            {"detail": "authentication is unavailable; retry shortly"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "2"},
        )
    if issued is None:
        request.state.refused = "unauthenticated"
        if wants_json:
            return JSONResponse(
                {"detail": "authentication required"},
                status_code=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="kyperian-engine"'},
            )
        return _page(target, "That token was not accepted.", status.HTTP_401_UNAUTHORIZED)
    request.state.caller = issued.session.caller
    response: Response
    if wants_json:
        response = JSONResponse(
            {"csrf_token": issued.session.csrf_token, "expires_at": issued.session.expires_at}
        )
    else:
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
    _set_session_cookie(response, issued, secure=_secure(request))
    return response


@router.post("/logout", responses={303: {"description": "signed out: back to the login page"}})
def logout(request: Request, caller: CallerDep) -> Response:
    """End the browser's session (needs the CSRF token, as every change by cookie does)."""
    response: Response
    if "text/html" in request.headers.get("accept", ""):
        response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    else:
        response = JSONResponse({"status": "signed out", "caller": caller})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


def _set_session_cookie(response: Response, issued: IssuedSession, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        issued.cookie,
        max_age=issued.max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="strict",
    )


def _secure(request: Request) -> bool:
    """Secure everywhere except plain http to this machine (``make run``): behind the ALB
    the engine sees http, but with ``X-Forwarded-Proto`` and a public host name."""
    plain_local = (
        request.url.scheme == "http"
        and "x-forwarded-proto" not in request.headers
        and (request.url.hostname or "").lower() in _LOCAL_HOSTS
    )
    return not plain_local


def _safe_next(target: str) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    parsed = urllib.parse.urlsplit(target)
    if (
        not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or parsed.scheme
        or parsed.netloc
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return HOME
    return target


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form, first value per field; bounded, undecodable bytes replaced."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BYTES:
            return {}
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {name: values[0] for name, values in fields.items() if values}


def _page(target: str, message: str, status_code: int) -> HTMLResponse:
    notice = f'<p role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kyperian: sign in</title>
<link rel="stylesheet" href="/ui/static/login.css"></head>
<body>
<main>
<h1>Kyperian engine</h1>
{notice}
<form method="post" action="/login">
<label for="token">Engine token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{html.escape(target, quote=True)}">
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>
"""
    return HTMLResponse(body, status_code=status_code, headers=_PAGE_HEADERS)
