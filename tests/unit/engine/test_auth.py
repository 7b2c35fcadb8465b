"""Engine authentication: every route but /health needs a caller, by bearer token or cookie.

Covers the app-wide gate (routes present and added later), the token's rotation grace
over moto's Secrets Manager, failing closed, session cookies, CSRF and the access log.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from fastapi import APIRouter, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from starlette.routing import Mount, Route

from kyperian.adapters.aws.secrets import CachedSecrets
from kyperian.domain.ports import PreviousSecret, SecretMatch, SecretSource
from kyperian.engine.auth import OPEN_ROUTES, SESSION_COOKIE, CsrfTokenDep, EngineAuth
from kyperian.engine.auth.credentials import FixedSecret
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.settings import Settings
from tests.engine_auth import AUTH_HEADERS, ENGINE_TOKEN, sign_in
from tests.unit.engine.conftest import Engine, log_records, metric_names

JSON = {"Accept": "application/json"}
NEW_TOKEN = "the-rotated-engine-token-0123456789"


def _services(engine: Engine, **settings: Any) -> EngineServices:
    return EngineServices(
        settings=Settings(environment="test", **settings),
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=None,
    )


def _with_change_route(app: FastAPI) -> FastAPI:
    """A state-changing route added after the app was built, echoing what it received."""

    async def change(request: Request, csrf: CsrfTokenDep) -> dict[str, str]:
        return {"body": (await request.body()).decode(), "csrf": csrf}

    app.add_api_route("/later/change", change, methods=["POST"])
    return app


@pytest.fixture
def app(engine: Engine) -> FastAPI:
    return _with_change_route(create_app(_services(engine, engine_token=ENGINE_TOKEN)))


@pytest.fixture
def anonymous(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://localhost") as client:
        yield client


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "AAPL", path)


def _every_route(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route and mount of the app, path parameters filled in."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, APIRoute | Route):
            found += [(m, _concrete(route.path)) for m in sorted(route.methods or {"GET"})]
        elif isinstance(route, Mount):
            found.append(("GET", route.path + "/anything"))
    return found


# --- the gate -----------------------------------------------------------------------------------


def test_every_route_but_health_and_login_refuses_an_anonymous_caller(
    app: FastAPI, anonymous: TestClient
) -> None:
    # GIVEN every route the app has (docs, OpenAPI and routes added later included)
    routes = [r for r in _every_route(app) if r not in OPEN_ROUTES]
    assert {("GET", "/docs"), ("GET", "/openapi.json"), ("POST", "/later/change")} <= set(routes)
    for method, path in routes:
        # WHEN called with no credential, and with a wrong token
        missing = anonymous.request(method, path, headers=JSON)
        wrong = anonymous.request(method, path, headers={"Authorization": "Bearer nope", **JSON})
        # THEN 401 with the same body either way, and a Bearer challenge
        for answer in (missing, wrong):
            assert answer.status_code == 401, (method, path)
            if method != "HEAD":
                assert answer.json() == {"detail": "authentication required"}
            assert answer.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "path",
    ["/docs", "/redoc", "/openapi.json", "/health/details", "/broker/paper/account",
     "/signals/AAPL"],
)  # fmt: skip
def test_the_right_token_opens_the_api_and_its_documentation(
    anonymous: TestClient, path: str
) -> None:
    # GIVEN the engine token  WHEN a route is called with it  THEN it is served
    assert anonymous.get(path, headers=AUTH_HEADERS).status_code == 200


def test_the_openapi_document_asks_for_the_token_except_on_open_routes(
    anonymous: TestClient,
) -> None:
    # GIVEN the OpenAPI document  WHEN read  THEN bearer auth is required globally...
    spec = anonymous.get("/openapi.json", headers=AUTH_HEADERS).json()
    assert spec["components"]["securitySchemes"]["engineToken"]["scheme"] == "bearer"
    assert spec["security"] == [{"engineToken": []}]
    # ... and lifted only where the gate lets anyone in
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/login"]["post"]["security"] == []
    assert "security" not in spec["paths"]["/decisions/{symbol}"]["get"]


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {ENGINE_TOKEN}",
        f"Bearer {ENGINE_TOKEN}x",
        f"Bearer {ENGINE_TOKEN[:-1]}",
        "Bearer",
        b"Bearer \xff\xfe\x80 not-utf-8",
        f"{ENGINE_TOKEN}",
    ],
)
def test_malformed_or_near_miss_tokens_are_refused(
    anonymous: TestClient, authorization: str | bytes
) -> None:
    # GIVEN a credential that is almost right  WHEN used  THEN 401, never a 5xx
    value = authorization if isinstance(authorization, bytes) else authorization.encode()
    answer = anonymous.get("/decisions/AAPL", headers={b"Authorization": value})
    assert answer.status_code == 401


def test_a_route_added_after_the_fact_is_protected(app: FastAPI, anonymous: TestClient) -> None:
    # GIVEN a router and a mounted app added after create_app, knowing nothing of auth
    router = APIRouter()

    @router.get("/brand/new")
    def brand_new() -> dict[str, str]:
        return {"money": "moves"}

    app.include_router(router)
    app.mount("/static", FastAPI())
    # WHEN called anonymously  THEN refused; WHEN called with the token  THEN served
    assert anonymous.get("/brand/new").status_code == 401
    assert anonymous.get("/static/x").status_code == 401
    assert anonymous.get("/brand/new", headers=AUTH_HEADERS).json() == {"money": "moves"}


def test_a_websocket_added_later_needs_a_caller_too(app: FastAPI, anonymous: TestClient) -> None:
    # GIVEN a websocket route added after the app was built
    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("positions")
        await websocket.close()

    app.add_api_websocket_route("/later/feed", feed)
    # WHEN opened anonymously  THEN closed with 1008 (policy violation) before any data
    with pytest.raises(WebSocketDisconnect) as refused, anonymous.websocket_connect("/later/feed"):
        pass
    assert refused.value.code == 1008
    # WHEN opened with the token  THEN served
    with anonymous.websocket_connect("/later/feed", headers=AUTH_HEADERS) as socket:
        assert socket.receive_text() == "positions"


def test_a_browser_asking_for_a_page_is_sent_to_the_login_form(anonymous: TestClient) -> None:
    # GIVEN no session  WHEN a browser asks for a page  THEN it is sent to /login, coming back
    answer = anonymous.get(
        "/ui/board?symbol=AAPL", headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fui%2Fboard%3Fsymbol%3DAAPL"
    page = anonymous.get("/login", params={"next": "/ui/board?symbol=AAPL"})
    assert page.status_code == 200
    assert 'name="next" value="/ui/board?symbol=AAPL"' in page.text
    assert page.headers["x-frame-options"] == "DENY"


def test_health_is_open_and_says_one_word(anonymous: TestClient) -> None:
    # GIVEN no credential  WHEN the ALB checks  THEN 200 and nothing but the status
    answer = anonymous.get("/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


# --- failing closed and the Secrets Manager token ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def secrets_client() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_no_token_and_no_readable_secret_refuses_everything(
    engine: Engine, secrets_client: Any
) -> None:
    # GIVEN no engine_token and a Secrets Manager where the token secret does not exist
    app = create_app(_services(engine))
    with TestClient(app) as client:
        # WHEN any protected route is called, even with a token
        answers = [
            client.get("/decisions/AAPL", headers=AUTH_HEADERS),
            client.get("/docs"),
            client.post("/login", data={"token": ENGINE_TOKEN}, headers=JSON),
        ]
        health = client.get("/health")
    # THEN every one is refused (503: retry; 401 when no credential was even offered),
    # and the health check still answers
    assert [a.status_code for a in answers] == [503, 401, 503]
    assert answers[0].headers["retry-after"] == "2"
    assert health.status_code == 200


def _rotating_app(engine: Engine, secrets_client: Any, clock: Clock, grace: int) -> FastAPI:
    secret_id = "/kyperian/test/engine/token"
    secrets_client.create_secret(Name=secret_id, SecretString=ENGINE_TOKEN)
    app = _with_change_route(create_app(_services(engine)))
    app.state.engine_auth = EngineAuth(
        CachedSecrets(secrets_client, max_age_seconds=0), secret_id, grace, 3600, clock=clock
    )
    secrets_client.put_secret_value(SecretId=secret_id, SecretString=NEW_TOKEN)
    return app


def test_the_previous_token_works_during_the_grace_period_only(
    engine: Engine, secrets_client: Any, log_buffer: io.StringIO
) -> None:
    # GIVEN the token rotated in Secrets Manager, with a one-hour grace period
    clock = Clock()
    app = _rotating_app(engine, secrets_client, clock, grace=3600)
    old, new = AUTH_HEADERS, {"Authorization": f"Bearer {NEW_TOKEN}"}
    with TestClient(app) as client:
        # WHEN both are used within the hour  THEN both work, each caller named by version
        clock.now += timedelta(minutes=59)
        assert client.get("/health/details", headers=old).status_code == 200
        assert client.get("/health/details", headers=new).status_code == 200
        # WHEN the hour has passed  THEN only the new one works
        clock.now += timedelta(minutes=2)
        assert client.get("/health/details", headers=old).status_code == 401
        assert client.get("/health/details", headers=new).status_code == 200
    callers = [r["caller"] for r in log_records(log_buffer) if r.get("path") == "/health/details"]
    assert callers == ["bearer:previous", "bearer:current", "anonymous", "bearer:current"]


def test_without_a_grace_period_the_previous_token_is_refused_at_once(
    engine: Engine, secrets_client: Any
) -> None:
    # GIVEN a rotation and grace 0  WHEN the old token is used  THEN 401
    app = _rotating_app(engine, secrets_client, Clock(), grace=0)
    with TestClient(app) as client:
        assert client.get("/health/details", headers=AUTH_HEADERS).status_code == 401


# --- sessions ---------------------------------------------------------------------------------


def _login(client: TestClient, token: str = ENGINE_TOKEN, **extra: str) -> Any:
    return client.post(
        "/login", data={"token": token, **extra}, headers=JSON, follow_redirects=False
    )


def test_login_exchanges_the_token_for_a_strict_httponly_cookie(anonymous: TestClient) -> None:
    # GIVEN the login form  WHEN a person signs in with the token (plain http on localhost)
    answer = anonymous.post(
        "/login", data={"token": ENGINE_TOKEN, "next": "/ui/board"}, follow_redirects=False
    )
    # THEN they are sent on, with a session cookie scripts cannot read nor other sites send
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/board")
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie  # twelve hours
    assert "Secure" not in cookie  # plain http to localhost only
    assert ENGINE_TOKEN not in cookie
    # AND the cookie opens the API
    assert anonymous.get("/decisions/AAPL").status_code == 404


def test_the_cookie_is_secure_anywhere_but_plain_local_http(app: FastAPI) -> None:
    # GIVEN the engine behind the ALB (public host, X-Forwarded-Proto)  WHEN signing in
    with TestClient(app, base_url="http://engine.kyperian.com") as client:
        answer = client.post(
            "/login", data={"token": ENGINE_TOKEN}, headers={"X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )  # fmt: skip
    # THEN the cookie is Secure
    assert "Secure" in answer.headers["set-cookie"]


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil", "x"])
def test_login_never_redirects_off_site(anonymous: TestClient, target: str) -> None:
    answer = anonymous.post(
        "/login", data={"token": ENGINE_TOKEN, "next": target}, follow_redirects=False
    )
    assert answer.headers["location"] == "/ui"


def test_a_wrong_token_gets_the_form_again_and_no_cookie(anonymous: TestClient) -> None:
    # GIVEN the login form  WHEN a wrong token is posted  THEN 401, no cookie, token not echoed
    answer = anonymous.post("/login", data={"token": "guess-guess-guess"})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers
    assert "guess-guess-guess" not in answer.text
    assert _login(anonymous, "guess-guess-guess").status_code == 401


def _session_app(engine: Engine, clock: Clock) -> FastAPI:
    app = _with_change_route(create_app(_services(engine, engine_token=ENGINE_TOKEN)))
    app.state.engine_auth = EngineAuth(
        FixedSecret(ENGINE_TOKEN), "unused", grace_seconds=0, session_seconds=3600, clock=clock
    )
    return app


def test_an_expired_session_is_refused(engine: Engine) -> None:
    # GIVEN a session of one hour
    clock = Clock()
    with TestClient(_session_app(engine, clock), base_url="http://localhost") as client:
        assert _login(client).status_code == 200
        clock.now += timedelta(minutes=59)
        assert client.get("/decisions/AAPL", headers=JSON).status_code == 404
        # WHEN the hour is over  THEN refused, and the browser is told to drop the cookie
        clock.now += timedelta(minutes=2)
        answer = client.get("/decisions/AAPL", headers=JSON)
    assert answer.status_code == 401
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]


def _tamper(cookie: str, part: int, value: str) -> str:
    parts = cookie.split(".")
    parts[part] = value
    return ".".join(parts)


def test_forged_cookies_are_refused(anonymous: TestClient, engine: Engine) -> None:
    # GIVEN a genuine session cookie
    _login(anonymous)
    genuine = anonymous.cookies[SESSION_COOKIE]
    version, session_id, expires, signature = genuine.split(".")
    forgeries = [
        _tamper(genuine, 2, str(int(expires) + 86400)),  # extended expiry
        _tamper(genuine, 1, "someone-else-entirely"),  # another session id
        _tamper(genuine, 3, signature[::-1]),  # another signature
        f"{version}.{session_id}.{expires}",  # no signature
        "v1.x.99999999999.",
        "garbage",
    ]
    for forged in forgeries:
        # WHEN a forged cookie is presented  THEN refused like no cookie at all
        anonymous.cookies.clear()
        anonymous.cookies.set(SESSION_COOKIE, forged, domain="localhost")
        assert anonymous.get("/decisions/AAPL", headers=JSON).status_code == 401, forged
    # AND a cookie signed under another token (before a rotation) is refused too
    other = TestClient(
        create_app(_services(engine, engine_token="another-token-entirely")),
        base_url="http://localhost",
    )
    with other:
        _login(other, "another-token-entirely")
        foreign = other.cookies[SESSION_COOKIE]
    anonymous.cookies.clear()
    anonymous.cookies.set(SESSION_COOKIE, foreign, domain="localhost")
    assert anonymous.get("/decisions/AAPL", headers=JSON).status_code == 401


def test_a_wrong_bearer_token_is_refused_even_with_a_valid_cookie(anonymous: TestClient) -> None:
    _login(anonymous)
    answer = anonymous.get("/decisions/AAPL", headers={"Authorization": "Bearer wrong"})
    assert answer.status_code == 401


# --- CSRF -------------------------------------------------------------------------------------


def test_changes_by_cookie_need_the_csrf_token(anonymous: TestClient) -> None:
    # GIVEN a person signed in, holding the CSRF token their page was given
    csrf = sign_in(anonymous)
    # WHEN a change is posted without it, or with a wrong one  THEN 403
    assert anonymous.post("/later/change", json={}).status_code == 403
    wrong = anonymous.post("/later/change", json={}, headers={"X-CSRF-Token": csrf[:-1] + "x"})
    assert wrong.status_code == 403
    bad_form = anonymous.post("/later/change", data={"csrf_token": "nope", "qty": "1"})
    assert bad_form.status_code == 403
    # WHEN it comes in the header, or as a form field  THEN accepted, the body intact
    header = anonymous.post("/later/change", json={"qty": 1}, headers={"X-CSRF-Token": csrf})
    assert header.status_code == 200
    assert header.json() == {"body": '{"qty":1}', "csrf": csrf}
    form = anonymous.post("/later/change", data={"csrf_token": csrf, "qty": "2"})
    assert form.status_code == 200
    assert form.json()["body"] == f"csrf_token={csrf}&qty=2"


def test_a_csrf_token_belongs_to_its_own_session(anonymous: TestClient) -> None:
    # GIVEN two sessions  WHEN the first's CSRF token is used with the second  THEN 403
    first = _login(anonymous).json()["csrf_token"]
    second = _login(anonymous).json()["csrf_token"]
    assert first != second
    answer = anonymous.post("/later/change", json={}, headers={"X-CSRF-Token": first})
    assert answer.status_code == 403


def test_bearer_callers_need_no_csrf_token(anonymous: TestClient) -> None:
    answer = anonymous.post("/later/change", content=b"x", headers=AUTH_HEADERS)
    assert answer.json() == {"body": "x", "csrf": ""}


def test_logout_needs_the_csrf_token_and_drops_the_cookie(anonymous: TestClient) -> None:
    csrf = _login(anonymous).json()["csrf_token"]
    assert anonymous.post("/logout").status_code == 403
    answer = anonymous.post("/logout", headers={"X-CSRF-Token": csrf, **JSON})
    assert answer.status_code == 200
    assert f'{SESSION_COOKIE}=""' in answer.headers["set-cookie"]
    assert anonymous.get("/decisions/AAPL").status_code == 401


# --- access log and metric ---------------------------------------------------------------------


def test_each_request_leaves_one_access_line_without_any_secret(
    anonymous: TestClient, log_buffer: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN requests by token, by cookie, refused, and with secrets in the query string
    anonymous.get(
        "/decisions/AAPL?token=query-secret-value",
        headers={**AUTH_HEADERS, "X-Forwarded-For": "6.6.6.6, 203.0.113.7"},
    )
    anonymous.get("/signals/AAPL", headers={"Authorization": f"Bearer {ENGINE_TOKEN}-wrong"})
    csrf = _login(anonymous).json()["csrf_token"]
    cookie = anonymous.cookies[SESSION_COOKIE]
    anonymous.post("/later/change", json={}, headers={"X-CSRF-Token": csrf})
    # WHEN the log is read
    raw = log_buffer.getvalue()
    lines = [r for r in log_records(log_buffer) if r.get("message") == "engine access"]
    # THEN one line per request, with method, path, status, latency, caller and client address
    assert [(r["method"], r["path"], r["status"], r["caller"]) for r in lines] == [
        ("GET", "/decisions/AAPL", 404, "bearer:current"),
        ("GET", "/signals/AAPL", 401, "anonymous"),
        ("POST", "/login", 200, lines[2]["caller"]),
        ("POST", "/later/change", 200, lines[2]["caller"]),
    ]
    assert re.fullmatch(r"session:[\w-]{8}", lines[2]["caller"])
    assert lines[0]["client_ip"] == "203.0.113.7"
    assert lines[1]["refused"] == "unauthenticated"
    assert all(isinstance(r["latency_ms"], float) for r in lines)
    # AND nothing secret was written
    for secret in (ENGINE_TOKEN, "query-secret-value", cookie, csrf):
        assert secret not in raw
    # AND the refusal was counted
    assert "EngineRequestsRefused" in metric_names(capsys.readouterr().out)


def test_templates_get_the_csrf_token_of_the_session(anonymous: TestClient) -> None:
    # GIVEN a signed-in person  WHEN a page's route asks for the CSRF token  THEN it is theirs
    csrf = _login(anonymous).json()["csrf_token"]
    answer = anonymous.post("/later/change", json={}, headers={"X-CSRF-Token": csrf})
    assert answer.json()["csrf"] == csrf
    assert json.dumps(answer.json()).count(csrf) == 1


# --- the rotation rule shared with the webhook key -----------------------------------------------


class _Rotated(SecretSource):
    """A secret rotated at ``ROTATED_AT`` from ``old`` to ``new`` (our port, no AWS API)."""

    ROTATED_AT = datetime(2026, 1, 1, tzinfo=UTC)

    def get(self, secret_id: str) -> str:
        return "new-value"

    def previous(self, secret_id: str) -> PreviousSecret | None:
        return PreviousSecret("old-value", self.ROTATED_AT)


@given(
    elapsed=st.floats(min_value=-10, max_value=10 * 86400, allow_nan=False),
    grace=st.integers(min_value=0, max_value=5 * 86400),
    provided=st.sampled_from(["new-value", "old-value", "other", "", "\udcff"]),
)
def test_the_previous_value_matches_exactly_while_in_grace(
    elapsed: float, grace: int, provided: str
) -> None:
    # GIVEN a rotation `elapsed` seconds ago  WHEN a value is presented
    now = _Rotated.ROTATED_AT + timedelta(seconds=elapsed)
    matched = _Rotated().match("id", provided, grace, now)
    # THEN the current value always matches, the previous one only within the grace period
    expected = {
        "new-value": SecretMatch.CURRENT,
        "old-value": SecretMatch.PREVIOUS if grace > 0 and elapsed < grace else None,
    }.get(provided)
    assert matched is expected


def test_login_before_the_engine_has_started_is_503_not_500() -> None:
    # GIVEN an app whose services are not built yet (the lifespan has not run)
    client = TestClient(create_app(None), raise_server_exceptions=False)
    # WHEN someone signs in or calls the API  THEN 503 (retry), never a 500
    assert client.post("/login", data={"token": ENGINE_TOKEN}).status_code == 503
    assert client.get("/decisions/AAPL", headers=AUTH_HEADERS).status_code == 503
