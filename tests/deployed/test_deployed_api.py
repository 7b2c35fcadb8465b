"""Integration tests against a deployed environment (staging), run by the deploy workflow.

They go through everything a TradingView alert crosses - CloudFront and WAF, the HTTP API,
the Lambda validator, DynamoDB, EventBridge, SQS, the engine on ECS and Redis - and check the
answers the specification and docs/webhook.md promise.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kyperian.client import Answer, Unreachable, engine_request, request, symbol_path
from tests.deployed.conftest import Deployment

DECISION_TIMEOUT = 60.0


def alert(api_key: str, symbol: str, **fields: Any) -> dict[str, Any]:
    return {
        "passphrase": api_key,
        "symbol": symbol,
        "source": "technicals",
        "price": 50.0,
        "confidence": 80,
        **fields,
    }


def accepted(answer: Answer) -> str:
    assert answer.status == 202, answer
    signal_id: str = answer.body["signal_id"]
    return signal_id


def test_a_wrong_key_is_refused_without_saying_why(deployment: Deployment, api_key: str) -> None:
    # WHEN an alert carries a wrong key
    body = alert("not-the-key", deployment.symbol("BAD"), action="buy", timeframe="60")
    answer = request("POST", f"{deployment.webhook}/webhook", body)
    # THEN 401, and nothing tells a missing key from a wrong one
    assert answer.status == 401, answer


def test_invalid_fields_are_named_in_the_400(deployment: Deployment, api_key: str) -> None:
    # WHEN an alert has an unknown action and an unmappable timeframe
    body = alert(api_key, deployment.symbol("INV"), action="hold", timeframe="120")
    answer = request("POST", f"{deployment.webhook}/webhook", body)
    # THEN 400 names both fields
    assert answer.status == 400, answer
    assert {d["field"] for d in answer.body["details"]} >= {"action", "timeframe"}


def test_a_multi_timeframe_alert_is_accepted_per_timeframe(
    deployment: Deployment, api_key: str
) -> None:
    # WHEN one alert carries the weekly and daily view of a symbol
    body = {
        "passphrase": api_key,
        "symbol": deployment.symbol("MTF"),
        "source": "technicals",
        "signals": [{"timeframe": "W", "action": "buy"}, {"timeframe": "D", "action": "buy"}],
    }
    answer = request("POST", f"{deployment.webhook}/webhook/mtf", body)
    # THEN each timeframe becomes its own normalized signal
    assert answer.status == 202, answer
    assert sorted(s["timeframe"] for s in answer.body["signals"]) == ["1D", "1W"]


def test_an_accepted_alert_reaches_the_engine_and_is_decided(
    deployment: Deployment, api_key: str
) -> None:
    if not deployment.engine:
        pytest.skip("no KYPERIAN_DEPLOYED_ENGINE_URL")
    # GIVEN a daily and then a 4h buy for a symbol of this run
    symbol = deployment.symbol("DEC")
    webhook = f"{deployment.webhook}/webhook"
    accepted(request("POST", webhook, alert(api_key, symbol, action="buy", timeframe="D")))
    last = accepted(request("POST", webhook, alert(api_key, symbol, action="buy", timeframe="240")))
    # WHEN the engine is asked for the symbol's decision
    deadline = time.monotonic() + DECISION_TIMEOUT
    answer: Answer | None = None
    while time.monotonic() < deadline:
        try:
            answer = engine_request("GET", f"{deployment.engine}/decisions/{symbol_path(symbol)}")
        except Unreachable:
            answer = None
        if answer is not None and answer.ok and answer.body.get("trigger_signal_id") == last:
            break
        time.sleep(1)
    # THEN the decision triggered by the last signal is there: EventBridge, SQS and the
    # worker delivered it, and fusion ran
    assert answer is not None, "the engine never answered"
    assert answer.body.get("trigger_signal_id") == last, answer
    assert answer.body["symbol"] == symbol
