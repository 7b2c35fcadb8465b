"""Post-deploy smoke test: the deployment answers, end to end, within seconds of going live.

Read-only unless ``KYPERIAN_API_KEY`` is set; the deploy workflow sets it for staging only,
so production is probed through its health endpoints and never sent a test alert.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from kyperian.client import Answer, Unreachable, request
from tests.deployed.conftest import Deployment

ATTEMPTS = 10


def get_until_up(url: str) -> Answer:
    """GET with a bounded retry: DNS and the new tasks may need a few seconds after a deploy."""
    last: Answer | None = None
    for _ in range(ATTEMPTS):
        try:
            last = request("GET", url)
        except Unreachable:
            last = None
        if last is not None and last.status < 500:
            return last
        time.sleep(3)
    pytest.fail(f"{url} did not come up: last answer {last}")


def test_the_webhook_api_is_healthy(deployment: Deployment) -> None:
    # WHEN the API's health route is asked through CloudFront
    answer = get_until_up(f"{deployment.webhook}/health")
    # THEN it answers 200 with every dependency reachable
    assert answer.status == 200, answer
    assert answer.body["status"] == "ok"
    assert set(answer.body["dependencies"].values()) == {"ok"}


def test_the_engine_is_healthy(deployment: Deployment) -> None:
    if not deployment.engine:
        pytest.skip("no KYPERIAN_DEPLOYED_ENGINE_URL")
    # WHEN the engine's health route is asked through its load balancer
    answer = get_until_up(f"{deployment.engine}/health")
    # THEN its worker runs and Redis answers
    assert answer.status == 200, answer
    assert answer.body["status"] == "ok", answer.body


def test_the_engine_refuses_anonymous_callers(deployment: Deployment) -> None:
    if not deployment.engine:
        pytest.skip("no KYPERIAN_DEPLOYED_ENGINE_URL")
    # WHEN the engine's API and documentation are asked with no credential
    for path in ("/decisions/AAPL", "/broker/paper/positions", "/openapi.json", "/docs"):
        answer = request("GET", f"{deployment.engine}{path}")
        # THEN each is refused: nothing that shows positions answers without authentication
        assert answer.status == 401, (path, answer)


def test_a_signed_alert_is_accepted_once(deployment: Deployment, api_key: str) -> None:
    # GIVEN a TradingView-shaped alert carrying the environment's key
    alert: dict[str, Any] = {
        "passphrase": api_key,
        "symbol": f"NASDAQ:{deployment.symbol('SMK')}",
        "action": "buy",
        "source": "custom",
        "timeframe": "60",
        "price": 100.0,
    }
    # WHEN it is posted twice
    first = request("POST", f"{deployment.webhook}/webhook", alert)
    again = request("POST", f"{deployment.webhook}/webhook", alert)
    # THEN the first is accepted and normalized, the second is the same signal, not a new one
    assert first.status == 202, first
    assert first.body["timeframe"] == "1h"
    assert first.body["duplicate"] is False
    assert again.status == 202, again
    assert again.body["duplicate"] is True
    assert again.body["signal_id"] == first.body["signal_id"]
