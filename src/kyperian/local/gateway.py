"""A local stand-in for the API Gateway HTTP API in front of the webhook Lambdas.

It turns each HTTP request on the three routes into the payload-format-2.0 event API
Gateway would send (stage-prefixed path, lower-cased headers, base64 for binary
bodies), calls the real Lambda handler, and writes back its answer. It also applies
the stage throttle of the specification (50 requests/s sustained, burst 100) with a
token bucket, answering 429 as API Gateway does. Requests run in a pool of worker
processes, each a warm "Lambda instance" that handles one request at a time, as on AWS
(Powertools' logger and metrics keep per-invocation state that threads would mix); the
pool's size is ``KYPERIAN_GATEWAY_INSTANCES``. Local use only.
"""

from __future__ import annotations

import asyncio
import base64
import multiprocessing
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kyperian.ingest import handler
from kyperian.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ROUTES = frozenset({("POST", "/webhook"), ("POST", "/webhook/mtf"), ("GET", "/health")})
FUNCTION_NAMES = {
    "/webhook": "signal-validator",
    "/webhook/mtf": "mtf-handler",
    "/health": "health-check",
}
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's own payload limit


class TokenBucket:
    """The HTTP API stage throttle: ``rate`` tokens a second, at most ``burst`` banked."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


class _Context:
    """The Lambda context attributes the handler reads."""

    memory_limit_in_mb = 1024

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.invoked_function_arn = (
            f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        )
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def build_event(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    stage: str,
    source_ip: str,
) -> dict[str, Any]:
    """The API Gateway HTTP API v2 event for one request (stage-prefixed, as on AWS)."""
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": f"/{stage}{path}",
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": f"/{stage}{path}",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
            "routeKey": f"{method} {path}",
            "stage": stage,
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


class Gateway:
    """ASGI app: routes, throttle, event building, handler call."""

    def __init__(self, stage: str, rate: float = 50, burst: int = 100, instances: int = 4) -> None:
        self.stage = stage
        self.bucket = TokenBucket(rate, burst)
        self._instances = ProcessPoolExecutor(
            max_workers=instances,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_instance,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            self.close()
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        if (method, path) not in ROUTES:
            await _answer(send, 404, b'{"message":"Not Found"}')
            return
        if not self.bucket.take():
            await _answer(send, 429, b'{"message":"Too Many Requests"}')
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, b'{"message":"Request Entity Too Large"}')
            return
        headers = _headers(scope)
        client = scope.get("client") or ("127.0.0.1", 0)
        event = build_event(
            method,
            path,
            scope.get("query_string", b"").decode("latin-1"),
            headers,
            body,
            self.stage,
            client[0],
        )
        function_name = f"kyperian-{self.stage}-{FUNCTION_NAMES[path]}"
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._instances, _invoke, function_name, event)
        await _respond(send, result)

    def close(self) -> None:
        """Stop the instances (on the server's shutdown)."""
        self._instances.shutdown(wait=True, cancel_futures=True)


def _warm_instance() -> None:
    """Cold start of one instance: import and wire the handler before the first request."""
    handler.wiring()


def _invoke(function_name: str, event: dict[str, Any]) -> dict[str, Any]:
    """One invocation inside an instance process."""
    answer: dict[str, Any] = handler.lambda_handler(event, _Context(function_name))
    return answer


def _headers(scope: Scope) -> dict[str, str]:
    """Lower-cased headers; repeated ones joined by commas, as API Gateway v2 does."""
    merged: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    return merged


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Send, result: dict[str, Any]) -> None:
    body = result.get("body") or ""
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    headers.setdefault("content-type", "application/json")
    await _answer(send, int(result.get("statusCode", 200)), payload, headers)


async def _answer(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    pairs = {"content-type": "application/json", **(headers or {})}
    pairs["content-length"] = str(len(body))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode(), v.encode()) for k, v in pairs.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app() -> Gateway:
    """uvicorn factory: the gateway for this environment's stage, throttled as configured."""
    settings = get_settings()
    return Gateway(
        settings.environment,
        settings.throttle_rate,
        settings.throttle_burst,
        settings.gateway_instances,
    )
