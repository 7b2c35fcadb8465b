"""Lambda entry point behind the HTTP API (payload format 2.0): routes, auth, answers.

Three API routes share this module, each wired to its own function on AWS:
``POST /webhook`` (one alert), ``POST /webhook/mtf`` (several timeframes of one symbol)
and ``GET /health``. Handlers stay thin: they read the request, call ``parse`` and
``SignalIntake``, and turn the outcome into an HTTP answer. Bad input always gets a 4xx
naming the field and the reason; a dependency failure gets a 503 (retry), never a 202
that was not earned. The API key is checked in constant time; neither it nor the
request body is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Final

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.utilities.typing import LambdaContext

from kyperian import __version__
from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.eventbridge import EventBridgePublisher
from kyperian.adapters.aws.secrets import CachedSecrets
from kyperian.domain.errors import KyperianError, OperationalError, Problem
from kyperian.domain.models import Signal, iso_utc
from kyperian.domain.ports import (
    SecretMatch,
    SecretSource,
    SignalPublisher,
    SignalStore,
    same_secret,
)
from kyperian.ingest.emf import COUNT, MILLISECONDS, RequestMetrics
from kyperian.ingest.intake import Accepted, SignalIntake
from kyperian.ingest.log import make_logger
from kyperian.ingest.parse import (
    ArrivalWindow,
    RequestRejected,
    check_media_type,
    check_size,
    parse_alert,
    parse_mtf_alert,
    pop_passphrase,
    read_json_object,
)
from kyperian.settings import Settings, get_settings

METRICS_NAMESPACE = "Kyperian"
_LOGGED_PROBLEMS = 10
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))
"""What ``json.dumps(body, separators=(",", ":"))`` builds on every call, built once."""

logger = make_logger(os.environ.get("POWERTOOLS_SERVICE_NAME", "signal-validator"))
metrics = RequestMetrics(namespace=METRICS_NAMESPACE)


class _Answers(ResponseBuilder):  # type: ignore[type-arg]  # Powertools' generic, untyped here
    """Powertools' response builder, minus a header scan no route of ours can use.

    Before answering, Powertools checks whether to gzip by reading ``Accept-Encoding``
    through a case-insensitive copy of every header (~5 % of the handler's time), even
    when neither the route nor the response asks for compression, which then never
    happens. None of ours ask, so the check is answered without the copy; a route or
    response that asks gets Powertools' own check.
    """

    @staticmethod
    def _has_compression_enabled(
        route_compression: bool, response_compression: bool | None, event: Any
    ) -> bool:
        if not route_compression and not response_compression:
            return False
        enabled: bool = ResponseBuilder._has_compression_enabled(
            route_compression, response_compression, event
        )
        return enabled


class _Resolver(APIGatewayHttpResolver):
    """The HTTP API resolver, answering through ``_Answers``."""

    def __init__(self) -> None:
        super().__init__()
        self._response_builder_class = _Answers


app = _Resolver()


class Unauthorized(RequestRejected):
    status = 401
    code = "unauthorized"


class Forbidden(RequestRejected):
    status = 403
    code = "forbidden"


@dataclass(frozen=True)
class Wiring:
    """The handler's dependencies, built once per Lambda container and reused warm."""

    settings: Settings
    store: SignalStore
    publisher: SignalPublisher
    secrets: SecretSource

    @property
    def intake(self) -> SignalIntake:
        return SignalIntake(self.store, self.publisher, on_undo_failed=_count_undo_failed)


def _count_undo_failed(signal_ids: list[str]) -> None:
    """Rows left pending after a failed publish: the UndoFailed alarm watches this."""
    metrics.add("UndoFailed", COUNT, len(signal_ids))


def ingest_client(service: str, settings: Settings, attempts: int | None = None) -> Any:
    """A client with the webhook's tight timeouts, so it can give up and undo in time."""
    return make_client(
        service,
        settings,
        read_timeout=settings.ingest_aws_read_timeout,
        connect_timeout=settings.ingest_aws_connect_timeout,
        max_attempts=settings.ingest_aws_max_attempts if attempts is None else attempts,
    )


@lru_cache(maxsize=1)
def wiring() -> Wiring:
    """Build the AWS adapters from settings (cached; tests clear it to rewire)."""
    settings = get_settings()
    metrics.set_dimensions(service=logger.service, environment=settings.environment)
    return Wiring(
        settings=settings,
        store=DynamoSignalStore(settings.signals_table, ingest_client("dynamodb", settings)),
        publisher=EventBridgePublisher(
            settings.event_bus_name,
            ingest_client("events", settings, attempts=1),  # the publisher retries itself
            attempts=settings.publish_attempts,
            budget_seconds=settings.publish_budget_seconds,
        ),
        secrets=CachedSecrets(
            ingest_client("secretsmanager", settings), settings.secret_max_age_seconds
        ),
    )


# --- request reading ----------------------------------------------------------------------


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        # A lone surrogate (an event escaped as \ud800) stays invalid UTF-8: a 400 later.
        return str(body).encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise RequestRejected(
            "body is not valid base64", [Problem("body", "invalid base64 encoding")]
        ) from None


def _check_origin(headers: dict[str, str], deps: Wiring) -> None:
    """Behind CloudFront, refuse requests that bypassed it (and so bypassed WAF)."""
    secret_id = deps.settings.origin_secret_id
    if secret_id is None:
        return
    if not same_secret(headers.get("x-origin-verify", ""), deps.secrets.get(secret_id)):
        raise Forbidden("request did not come through the edge")


def _authenticate(provided: str | None, deps: Wiring) -> None:
    """One answer for a missing and for a wrong key: nothing tells which it was."""
    matched = deps.secrets.match(
        deps.settings.api_key_secret_id,
        provided,
        deps.settings.api_key_grace_seconds,
        datetime.now(UTC),
    )
    if matched is SecretMatch.PREVIOUS:
        metrics.add("PreviousApiKeyUsed", COUNT, 1)
        logger.warning("request authenticated with the previous API key: update the alert")
    if matched is None:
        raise Unauthorized("missing or invalid API key")


def _read_alert(deps: Wiring) -> dict[str, Any]:
    """Size, media type, JSON and key checks shared by both webhook routes."""
    event = app.current_event
    headers = {k.lower(): v for k, v in (event.raw_event.get("headers") or {}).items()}
    _check_origin(headers, deps)
    body = _raw_body(event.raw_event)
    check_size(body, deps.settings.max_body_bytes)
    check_media_type(headers.get("content-type"))
    header_key = headers.get("x-api-key")
    if header_key is not None:
        _authenticate(header_key, deps)
    payload = read_json_object(body)
    passphrase = pop_passphrase(payload)
    if header_key is None:
        _authenticate(passphrase, deps)
    return payload


def _window(settings: Settings) -> ArrivalWindow:
    return ArrivalWindow.at(
        datetime.now(UTC), settings.signal_ttl_days, settings.max_clock_skew_seconds
    )


# --- answers ------------------------------------------------------------------------------


def _json(status: int, body: dict[str, Any]) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=_COMPACT_JSON.encode(body),
        headers={"Cache-Control": "no-store"},
    )


def _accepted_view(item: Accepted) -> dict[str, Any]:
    signal = item.signal
    return {
        "signal_id": signal.signal_id,
        "symbol": signal.symbol,
        "timeframe": signal.timeframe,
        "action": signal.action,
        "source": signal.source,
        "received_at": iso_utc(signal.received_at),  # as in the event detail
        "duplicate": item.duplicate,
    }


def _count_accepted(items: list[Accepted]) -> None:
    """SignalsAccepted in total and by action, timeframe and source (duplicates apart)."""
    for item in items:
        if item.duplicate:
            metrics.add("DuplicateSignals", COUNT, 1)
            continue
        signal = item.signal
        metrics.add("SignalsAccepted", COUNT, 1)
        by = {"action": signal.action, "timeframe": signal.timeframe, "source": signal.source}
        metrics.add_by("SignalsAccepted", COUNT, 1, by)


def _ingest(parse: Callable[[dict[str, Any], ArrivalWindow], list[Signal]]) -> list[Accepted]:
    """Read, authenticate, validate, store and publish; the route shapes the answer."""
    deps = wiring()
    started = time.perf_counter()
    signals = parse(_read_alert(deps), _window(deps.settings))
    validation_ms = (time.perf_counter() - started) * 1000
    metrics.add("ValidationLatency", MILLISECONDS, validation_ms)
    # The first signal's id follows it through the bus, the queue and the engine's logs.
    logger.set_correlation_id(signals[0].signal_id)
    accepted = deps.intake.accept(signals)
    _count_accepted(accepted)
    logger.info(
        "signals accepted",
        extra={
            "signal_ids": [a.signal.signal_id for a in accepted],
            "symbol": signals[0].symbol,
            "duplicates": sum(a.duplicate for a in accepted),
        },
    )
    return accepted


# --- routes -------------------------------------------------------------------------------


@app.post("/webhook")
def webhook() -> Response[str]:
    """One TradingView alert: one symbol, one timeframe."""
    (accepted,) = _ingest(lambda payload, window: [parse_alert(payload, window)])
    return _json(202, {"status": "accepted", **_accepted_view(accepted)})


@app.post("/webhook/mtf")
def webhook_mtf() -> Response[str]:
    """One alert carrying several timeframes of one symbol, accepted all-or-nothing."""
    accepted = _ingest(parse_mtf_alert)
    return _json(202, {"status": "accepted", "signals": [_accepted_view(a) for a in accepted]})


@app.get("/health")
def health() -> Response[str]:
    """Status, version and whether each dependency answers (200 all well, else 503)."""
    deps = wiring()
    checks: dict[str, Callable[[], object]] = {
        "signals_table": deps.store.check,
        "event_bus": deps.publisher.check,
        "api_key_secret": lambda: deps.secrets.get(deps.settings.api_key_secret_id),
    }
    dependencies = {name: _probe(name, check) for name, check in checks.items()}
    healthy = all(state == "ok" for state in dependencies.values())
    body = {
        "status": "ok" if healthy else "degraded",
        "version": __version__,
        "environment": deps.settings.environment,
        "dependencies": dependencies,
    }
    return _json(200 if healthy else 503, body)


def _probe(name: str, check: Callable[[], object]) -> str:
    try:
        check()
    except KyperianError as exc:
        logger.warning("health check failed", extra={"dependency": name, "error": str(exc)})
        return "unavailable"
    return "ok"


# --- errors -------------------------------------------------------------------------------


@app.exception_handler(RequestRejected)  # type: ignore[misc]  # Powertools leaves it untyped
def _rejected(exc: RequestRejected) -> Response[str]:
    metrics.add("SignalsRejected", COUNT, 1)
    metrics.add_by("SignalsRejected", COUNT, 1, {"reason": exc.code})
    details = [{"field": p.field, "reason": p.reason} for p in exc.problems]
    # Field and reason only (never the body; the passphrase is gone before validation), so
    # on-call can see why a sender's alerts are refused without asking for a sample.
    logger.info(
        "request rejected",
        extra={"reason": exc.code, "problems": details[:_LOGGED_PROBLEMS]},
    )
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if details:
        body["details"] = details
    return _json(exc.status, body)


@app.exception_handler(KyperianError)  # type: ignore[misc]  # Powertools leaves it untyped
def _unavailable(exc: KyperianError) -> Response[str]:
    """A dependency failed: nothing was accepted; the caller should retry."""
    metrics.add("IngestUnavailable", COUNT, 1)
    level = logger.error if isinstance(exc, OperationalError) else logger.warning
    level("signal not accepted: dependency failure", extra={"error": str(exc)})
    return _json(
        503,
        {"error": "unavailable", "message": "the signal was not accepted; retry shortly"},
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The function every route's Lambda points at (``kyperian.ingest.handler.lambda_handler``)."""
    # The request's id correlates its lines until an accepted signal's id replaces it.
    logger.set_correlation_id(_request_id(event))
    wiring()  # built once per container: clients, cached secrets, metric dimensions
    return app.resolve(event, context)


def _request_id(event: dict[str, Any]) -> str | None:
    """``requestContext.requestId``, read directly (a JMESPath query costs more than this)."""
    request_context = event.get("requestContext")
    return request_context.get("requestId") if isinstance(request_context, dict) else None
