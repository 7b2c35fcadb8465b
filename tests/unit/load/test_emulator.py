"""The emulator's timing middleware: every call counted per caller and operation, on demand."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jsonpath_ng import ext

from kyperian.local.emulator import STATS_PATH, Timed, remember_jsonpaths


def _moto_like(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok":', b"true}"]


def _call(app: Timed, **environ: str) -> tuple[str, bytes]:
    status: list[str] = []
    body = b"".join(app(dict(environ), lambda s, _h: status.append(s)))
    return status[0], body


def test_calls_are_timed_per_caller_and_operation_and_cleared_on_post() -> None:
    # GIVEN the middleware around an app answering every call
    app = Timed(_moto_like)

    # WHEN the gateway and the engine call it, and an unnamed client too
    ua = "Boto3/1.40 md/Botocore#1.41 app/{} os/linux"
    for _ in range(3):
        _call(
            app,
            PATH_INFO="/",
            HTTP_USER_AGENT=ua.format("gateway"),
            HTTP_X_AMZ_TARGET="DynamoDB_20120810.PutItem",
        )
    _call(
        app,
        PATH_INFO="/",
        HTTP_USER_AGENT=ua.format("engine"),
        HTTP_X_AMZ_TARGET="AmazonSQS.DeleteMessageBatch",
    )
    answer = _call(app, PATH_INFO="/moto-api/data.json", REQUEST_METHOD="GET")
    status, body = _call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="GET")

    # THEN the answers pass through whole and the figures say who called what how often
    assert answer == ("200 OK", b'{"ok":true}')
    calls = {(c["caller"], c["operation"]): c for c in json.loads(body)["calls"]}
    assert status == "200 OK"
    assert calls[("gateway", "DynamoDB_20120810.PutItem")]["count"] == 3
    assert calls[("engine", "AmazonSQS.DeleteMessageBatch")]["count"] == 1
    assert calls[("other", "GET /moto-api/data.json")]["count"] == 1
    assert all(c["p50_ms"] <= c["p99_ms"] for c in calls.values())

    # AND a POST clears them
    _call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="POST")
    assert json.loads(_call(app, PATH_INFO=STATS_PATH, REQUEST_METHOD="GET")[1])["calls"] == []


def test_jsonpath_expressions_are_parsed_once_and_still_find_the_same() -> None:
    # GIVEN the emulator's JSONPath memo (moto's EventBridge parses per event without it)
    module: Any = ext
    remember_jsonpaths()
    remember_jsonpaths()  # a second call must not wrap the memo again

    # WHEN the same expression is parsed twice and used
    first, second = module.parse("$.detail.symbol"), module.parse("$.detail.symbol")

    # THEN it is one parsed object, and it finds what a fresh parse finds
    assert first is second
    assert [m.value for m in first.find({"detail": {"symbol": "AAPL"}})] == ["AAPL"]
    assert module.parse.__wrapped__("$.detail.symbol") is not first
