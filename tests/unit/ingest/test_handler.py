"""The Lambda handler on real HTTP API v2 events: answers, auth, and no 5xx for any input."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import ResponseBuilder
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kyperian.ingest import handler
from tests.aws_resources import API_KEY
from tests.conftest import FakeLambdaContext, IngestStack, rewire
from tests.events.load import http_event

CTX = FakeLambdaContext()


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the handler's logger writes (it holds the stdout of import time, not capsys's)."""
    sink = io.StringIO()
    stream_handler: Any = handler.logger.registered_handler
    # Swapped, not setStream(): that flushes the old stream, which a runner (mutmut) may close.
    previous, stream_handler.stream = stream_handler.stream, sink
    yield sink
    stream_handler.stream = previous


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler.lambda_handler(event, CTX)
    body = json.loads(response["body"]) if response.get("body") else {}
    return response["statusCode"], body


def alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "passphrase": API_KEY,
        "symbol": "NASDAQ:AAPL",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        "price": 189.42,
        "confidence": 85,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def test_valid_alert_is_accepted_with_its_id(ingest_stack: IngestStack) -> None:
    # GIVEN a TradingView alert carrying the passphrase in its body
    # WHEN it is posted to /webhook
    status, body = call(http_event(body=alert()))
    # THEN it is accepted (202) with its id and canonical fields
    assert status == 202
    assert body["status"] == "accepted"
    assert body["duplicate"] is False
    assert (body["symbol"], body["timeframe"], body["action"]) == ("AAPL", "4h", "BUY")
    assert len(body["signal_id"]) == 36


def test_text_plain_and_base64_bodies_are_accepted(ingest_stack: IngestStack) -> None:
    status, _ = call(http_event(body=alert(), content_type="text/plain; charset=utf-8"))
    assert status == 202
    raw = json.dumps(alert(symbol="MSFT")).encode()
    status, _ = call(http_event(body=raw, base64_body=True))
    assert status == 202


def test_header_key_is_accepted_without_passphrase(ingest_stack: IngestStack) -> None:
    event = http_event(body=alert(passphrase=None), headers={"X-API-Key": API_KEY})
    assert call(event)[0] == 202


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (alert(passphrase=None), {}),
        (alert(passphrase="wrong"), {}),
        (alert(passphrase=""), {}),
        (alert(passphrase=12345), {}),
        (alert(passphrase=None), {"X-API-Key": "wrong"}),
        (alert(), {"X-API-Key": "wrong"}),
        (alert(passphrase=None, symbol="{{ticker}}"), {}),
        # a lone surrogate (legal JSON escape, not UTF-8) used to raise before the check ended
        (alert(passphrase="\ud800"), {}),
        (alert(passphrase=None), {"X-API-Key": "\udfff" + API_KEY}),
    ],
)
def test_missing_or_wrong_key_is_401_without_detail(
    ingest_stack: IngestStack, body: dict[str, Any], headers: dict[str, str]
) -> None:
    # GIVEN a request without the right key; WHEN posted
    status, answer = call(http_event(body=body, headers=headers))
    # THEN 401, the same answer whichever way the key was missing or wrong, no field details
    assert status == 401
    assert answer == {"error": "unauthorized", "message": "missing or invalid API key"}


@pytest.mark.parametrize(
    ("event", "status", "error"),
    [
        (http_event(body="x" * 16385), 413, "payload_too_large"),
        (http_event(body=alert(), content_type="application/xml"), 415, "unsupported_media_type"),
        (http_event(body=None), 400, "malformed_json"),
        (http_event(body=""), 400, "malformed_json"),
        (http_event(body='{"symbol": "AAPL", "price": {{close}}}'), 400, "malformed_json"),
        (http_event(body="[]"), 400, "malformed_json"),
        (http_event(body=b"\xff\xfe\x00"), 400, "malformed_json"),
        (http_event(body=alert(action="hold")), 400, "validation_failed"),
        (http_event(body=alert(price="NaN")), 400, "validation_failed"),
        (http_event(body=alert(price=1e400)), 400, "validation_failed"),
        (http_event(body=alert(price=10**400)), 400, "validation_failed"),
        (http_event(body=alert(price=1e-200)), 400, "validation_failed"),
        (http_event(body=alert(timestamp="0001-01-01T00:00:00+01:00")), 400, "validation_failed"),
        (
            http_event(body='{"passphrase":"\ud800"}'.encode("utf-8", "surrogatepass")),
            400,
            "malformed_json",
        ),
        (http_event(body='{"passphrase":"k","price":1' + "0" * 5000 + "}"), 400, "malformed_json"),
        (http_event(body="[" * 3000 + "]" * 3000), 400, "malformed_json"),
    ],
)
def test_bad_input_gets_the_documented_4xx(
    ingest_stack: IngestStack, event: dict[str, Any], status: int, error: str
) -> None:
    code, body = call(event)
    assert (code, body["error"]) == (status, error)
    assert body["message"]


def test_validation_400_lists_every_field_and_reason(ingest_stack: IngestStack) -> None:
    # GIVEN an authenticated alert with three bad fields and one missing
    event = http_event(body=alert(action="hold", timeframe="120", confidence=150, source=None))
    # WHEN posted
    status, body = call(event)
    # THEN one 400 lists them all, by field
    assert status == 400
    fields = {d["field"] for d in body["details"]}
    assert fields == {"action", "timeframe", "confidence", "source"}
    assert all(d["reason"] for d in body["details"])


def test_unicode_symbols_are_rejected_not_crashed(ingest_stack: IngestStack) -> None:
    status, body = call(http_event(body=alert(symbol="ÄPPLE😀")))
    assert status == 400
    assert body["details"][0]["field"] == "symbol"


def test_duplicate_delivery_is_answered_with_the_first_id(ingest_stack: IngestStack) -> None:
    # GIVEN an alert accepted once
    _, first = call(http_event(body=alert()))
    # WHEN TradingView delivers it again
    status, again = call(http_event(body=alert()))
    # THEN 202 with the same id, flagged as a duplicate
    assert status == 202
    assert again["signal_id"] == first["signal_id"]
    assert again["duplicate"] is True


def test_mtf_route_accepts_all_timeframes(ingest_stack: IngestStack) -> None:
    body = {
        "passphrase": API_KEY,
        "symbol": "AAPL",
        "source": "technicals",
        "signals": [
            {"timeframe": "1W", "action": "buy"},
            {"timeframe": "1D", "action": "buy"},
            {"timeframe": "240", "action": "strong_buy"},
        ],
    }
    status, answer = call(http_event(path="/webhook/mtf", body=body))
    assert status == 202
    assert [s["timeframe"] for s in answer["signals"]] == ["1W", "1D", "4h"]
    assert not any(s["duplicate"] for s in answer["signals"])


def test_health_reports_dependencies(ingest_stack: IngestStack) -> None:
    status, body = call(http_event(method="GET", path="/health", body=None))
    assert status == 200
    assert body["status"] == "ok"
    assert body["environment"] == "test"
    assert body["dependencies"] == {
        "signals_table": "ok",
        "event_bus": "ok",
        "api_key_secret": "ok",
    }


def test_health_is_503_when_a_dependency_is_gone(ingest_stack: IngestStack) -> None:
    ingest_stack.clients["dynamodb"].delete_table(TableName=ingest_stack.resources.table)
    status, body = call(http_event(method="GET", path="/health", body=None))
    assert status == 503
    assert body["dependencies"]["signals_table"] == "unavailable"
    assert body["dependencies"]["event_bus"] == "ok"


def test_unknown_route_is_404(ingest_stack: IngestStack) -> None:
    assert call(http_event(path="/nope", body=alert()))[0] == 404


def test_origin_header_is_required_behind_cloudfront(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a deployment behind CloudFront, whose origin secret the handler checks
    ingest_stack.clients["secretsmanager"].create_secret(
        Name="/kyperian/test/api/origin-secret", SecretString="edge-secret"
    )
    monkeypatch.setenv("KYPERIAN_ORIGIN_SECRET_ID", "/kyperian/test/api/origin-secret")
    rewire()
    # WHEN a request skips CloudFront, and one comes through it
    direct = call(http_event(body=alert()))
    via_edge = call(http_event(body=alert(), headers={"X-Origin-Verify": "edge-secret"}))
    # THEN only the one through the edge is accepted
    assert direct[0] == 403
    assert via_edge[0] == 202


def test_secret_unreadable_is_503_not_401(ingest_stack: IngestStack) -> None:
    ingest_stack.clients["secretsmanager"].delete_secret(
        SecretId=ingest_stack.resources.secret_id, ForceDeleteWithoutRecovery=True
    )
    status, body = call(http_event(body=alert()))
    assert status == 503
    assert body["error"] == "unavailable"


def test_passphrase_is_never_logged(
    ingest_stack: IngestStack, logged: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    call(http_event(body=alert()))
    call(http_event(body=alert(action="hold")))
    call(http_event(body=alert(passphrase="wrong-guess")))
    out = logged.getvalue() + capsys.readouterr().out
    assert "signals accepted" in out  # the log is really captured
    assert API_KEY not in out
    assert "wrong-guess" not in out


bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    st.dictionaries(
        st.sampled_from(
            [
                "passphrase",
                "symbol",
                "action",
                "source",
                "timeframe",
                "price",
                "confidence",
                "indicators",
                "timestamp",
                "signals",
            ]
        ),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(),
            st.text(max_size=12),
            st.lists(st.integers(), max_size=3),
            st.dictionaries(st.text(max_size=5), st.floats(), max_size=3),
            st.just(API_KEY),
        ),
    ).map(json.dumps),
)


@hypothesis_settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=bodies,
    path=st.sampled_from(["/webhook", "/webhook/mtf"]),
    content_type=st.sampled_from(["application/json", "text/plain", None, "image/png"]),
    header_key=st.sampled_from([None, API_KEY, "nope"]),
)
def test_no_input_makes_the_handler_answer_5xx(
    ingest_stack: IngestStack,
    body: str | bytes,
    path: str,
    content_type: str | None,
    header_key: str | None,
) -> None:
    headers = {"X-API-Key": header_key} if header_key else {}
    event = http_event(path=path, body=body, headers=headers, content_type=content_type)
    status, answer = call(event)
    assert status in {202, 400, 401, 413, 415}
    assert "Traceback" not in json.dumps(answer)


def test_rejections_log_field_and_reason_but_never_the_key(
    ingest_stack: IngestStack, logged: io.StringIO
) -> None:
    # GIVEN an authenticated alert with a bad timeframe
    call(http_event(body=alert(timeframe="120")))
    # THEN the log says which field and why, and carries no key
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    (rejected,) = [line for line in lines if line.get("message") == "request rejected"]
    assert rejected["reason"] == "validation_failed"
    assert rejected["problems"][0]["field"] == "timeframe"
    assert "120" in rejected["problems"][0]["reason"]
    assert API_KEY not in json.dumps(lines)


def test_a_rotated_key_keeps_working_for_the_grace_period(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the key is rotated (the old value becomes AWSPREVIOUS), with caching off
    monkeypatch.setenv("KYPERIAN_SECRET_MAX_AGE_SECONDS", "0")
    rewire()
    ingest_stack.clients["secretsmanager"].put_secret_value(
        SecretId=ingest_stack.resources.secret_id, SecretString="the-new-key-0123456789"
    )
    # WHEN alerts arrive with the old key (not yet updated) and with the new one
    old = call(http_event(body=alert(symbol="GRACEA")))
    new = call(http_event(body=alert(symbol="GRACEB", passphrase="the-new-key-0123456789")))
    # THEN both are accepted during the grace period
    assert (old[0], new[0]) == (202, 202)


def test_without_a_grace_period_only_the_current_key_works(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rotation and no grace period
    monkeypatch.setenv("KYPERIAN_SECRET_MAX_AGE_SECONDS", "0")
    monkeypatch.setenv("KYPERIAN_API_KEY_GRACE_SECONDS", "0")
    rewire()
    ingest_stack.clients["secretsmanager"].put_secret_value(
        SecretId=ingest_stack.resources.secret_id, SecretString="the-new-key-0123456789"
    )
    # THEN the old key is refused at once
    assert call(http_event(body=alert(symbol="GRACEC")))[0] == 401


def test_a_revoked_previous_key_is_refused_within_the_grace_period(
    ingest_stack: IngestStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a rotation after a leak, and the previous version's label removed (revoked)
    monkeypatch.setenv("KYPERIAN_SECRET_MAX_AGE_SECONDS", "0")
    rewire()
    secrets = ingest_stack.clients["secretsmanager"]
    secret_id = ingest_stack.resources.secret_id
    secrets.put_secret_value(SecretId=secret_id, SecretString="the-new-key-0123456789")
    versions = secrets.list_secret_version_ids(SecretId=secret_id)["Versions"]
    (previous,) = [v["VersionId"] for v in versions if "AWSPREVIOUS" in v["VersionStages"]]
    secrets.update_secret_version_stage(
        SecretId=secret_id, VersionStage="AWSPREVIOUS", RemoveFromVersionId=previous
    )
    # THEN the old key is refused and the new one accepted
    assert call(http_event(body=alert(symbol="GRACED")))[0] == 401
    assert (
        call(http_event(body=alert(symbol="GRACEE", passphrase="the-new-key-0123456789")))[0] == 202
    )


@pytest.fixture
def header_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts reads of the event's case-insensitive header copy (Powertools' gzip check)."""
    reads: list[int] = []
    original = APIGatewayProxyEventV2.resolved_headers_field

    def counted(event: APIGatewayProxyEventV2) -> Any:
        reads.append(1)
        return original.fget(event)  # type: ignore[attr-defined]

    monkeypatch.setattr(APIGatewayProxyEventV2, "resolved_headers_field", property(counted))
    return reads


@pytest.mark.parametrize("path", ["/webhook", "/webhook/mtf", "/health"])
def test_answers_skip_powertools_header_copy_when_nothing_asks_for_gzip(
    ingest_stack: IngestStack, header_reads: list[int], path: str
) -> None:
    # GIVEN a caller that accepts gzip, on routes none of which asks for compression
    body = alert(symbol="NOGZIP")
    if path == "/webhook/mtf":
        body = {**body, "signals": [{"timeframe": "60", "action": "buy"}]}
    event = http_event(
        body=body,
        path=path,
        method="GET" if path == "/health" else "POST",
        headers={"Accept-Encoding": "gzip"},
    )
    # WHEN it is answered
    response = handler.lambda_handler(event, CTX)
    # THEN the answer goes through our response builder, which decides without Powertools'
    # copy of the headers (a Powertools that ignored `_response_builder_class` would read
    # it), and is not compressed
    assert response["statusCode"] in {200, 202}
    assert header_reads == []
    assert "Content-Encoding" not in response["headers"]


@pytest.mark.parametrize("accept", [None, "gzip", "br", "gzip, deflate"])
def test_the_compression_rule_is_powertools_own(accept: str | None) -> None:
    # GIVEN a request accepting some encoding, or none
    event = http_event(body={})
    headers = {k: v for k, v in event["headers"].items() if k.lower() != "accept-encoding"}
    event["headers"] = headers if accept is None else {**headers, "accept-encoding": accept}
    request = APIGatewayProxyEventV2(event)
    for route, response in [(r, a) for r in (False, True) for a in (None, False, True)]:
        # WHEN a route and a response ask for compression or not
        ours = handler._Answers._has_compression_enabled(route, response, request)
        theirs = ResponseBuilder._has_compression_enabled(route, response, request)
        # THEN the answer is Powertools' own
        assert ours is theirs, (route, response)
