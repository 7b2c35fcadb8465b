"""The local stack as a user runs it: `kyperian up` in a subprocess, alerts over HTTP.

One stack (free ports, its own emulator and redis-server) serves every test in this
module; the last test stops it with Ctrl-C and checks nothing is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from kyperian.client import Answer, Unreachable, request
from kyperian.local.launcher import RunningStack, StackDidNotStart, launch
from kyperian.local.supervisor import port_open

pytestmark = pytest.mark.e2e

API_KEY = "e2e-key-0123456789abcdefghijklmnopqrstuv"


Stack = RunningStack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """GIVEN the whole system started as `kyperian up` on free ports."""
    try:
        started = launch(API_KEY, tmp_path_factory.mktemp("stack"))
    except StackDidNotStart as exc:
        pytest.fail(str(exc))
    try:
        yield started
    finally:
        started.stop()


def _post(stack: Stack, path: str, body: dict[str, Any]) -> Answer:
    return request("POST", f"{stack.gateway}{path}", {"passphrase": API_KEY, **body})


def _decision_for(stack: Stack, symbol: str, trigger: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the engine until the decision triggered by ``trigger`` is served."""
    deadline = time.monotonic() + timeout
    last: Answer | None = None
    while time.monotonic() < deadline:
        try:
            last = request("GET", f"{stack.engine}/decisions/{symbol}", bearer=stack.engine_token)
        except Unreachable:  # the engine is (re)starting
            time.sleep(0.2)
            continue
        if last.ok and last.body.get("trigger_signal_id") == trigger:
            return last.body
        time.sleep(0.2)
    pytest.fail(f"no decision triggered by {trigger}; last answer: {last}")


def _accepted(answer: Answer) -> str:
    assert answer.status == 202, answer
    signal_id: str = answer.body["signal_id"]
    return signal_id


def test_aligned_buys_give_a_buy_decision_with_a_size(stack: Stack) -> None:
    # WHEN 1W BUY, 1D BUY and 4h STRONG_BUY arrive for one symbol
    base = {"symbol": "NASDAQ:E2EA", "source": "luxalgo", "price": 100.0, "confidence": 80}
    _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "1W"}))
    _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "D"}))
    last = _accepted(_post(stack, "/webhook", {**base, "action": "strong_buy", "timeframe": "240"}))
    # THEN the engine decides to buy, unvetoed, with a positive size
    decision = _decision_for(stack, "E2EA", last)
    assert decision["action"] in {"BUY", "STRONG_BUY"}
    assert decision["vetoes"] == []
    assert decision["position_size"] > 0


def test_weekly_sell_vetoes_a_4h_buy_with_its_reason(stack: Stack) -> None:
    # WHEN a 1W SELL is followed by a 4h BUY
    base = {"symbol": "E2EB", "source": "technicals", "price": 50.0, "confidence": 80}
    _accepted(_post(stack, "/webhook", {**base, "action": "sell", "timeframe": "1W"}))
    last = _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "4h"}))
    # THEN the decision is vetoed, says why, and has no size
    decision = _decision_for(stack, "E2EB", last)
    assert decision["position_size"] == 0
    codes = {v["code"] for v in decision["vetoes"]}
    assert "HIGHER_TIMEFRAME_CONFLICT" in codes
    assert all(v["reason"] for v in decision["vetoes"])


def test_bad_input_gets_the_documented_4xx(stack: Stack) -> None:
    bad = _post(stack, "/webhook", {"symbol": "E2EC", "action": "hold", "timeframe": "120"})
    assert bad.status == 400
    assert {d["field"] for d in bad.body["details"]} == {"action", "timeframe", "source"}
    unauthorized = request("POST", f"{stack.gateway}/webhook", {"symbol": "E2EC"})
    assert unauthorized.status == 401
    assert request("GET", f"{stack.gateway}/nope").status == 404


def test_a_restarted_engine_loses_no_accepted_signal(stack: Stack) -> None:
    # GIVEN the engine is stopped (as ECS stops a task)
    engine_pid = stack.pids()["engine"]
    os.kill(engine_pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while port_open(stack.engine_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    # WHEN alerts are accepted while it is down
    base = {"symbol": "E2ED", "source": "momentum", "price": 10.0, "confidence": 90}
    _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "1D"}))
    last = _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "4h"}))
    # THEN the supervisor brings the engine back and it decides on both signals
    decision = _decision_for(stack, "E2ED", last, timeout=60)
    assert stack.pids()["engine"] != engine_pid
    assert len(decision["signal_ids"]) == 2


def test_the_engine_needs_its_token_which_the_cli_finds_in_another_shell(stack: Stack) -> None:
    # GIVEN a decision for a symbol
    base = {"symbol": "E2EF", "source": "luxalgo", "price": 20.0, "confidence": 80}
    trigger = _accepted(_post(stack, "/webhook", {**base, "action": "buy", "timeframe": "1D"}))
    _decision_for(stack, "E2EF", trigger)
    # WHEN the engine is asked without the token  THEN 401 (its health check stays open)
    assert request("GET", f"{stack.engine}/decisions/E2EF").status == 401
    assert request("GET", f"{stack.engine}/openapi.json").status == 401
    assert request("GET", f"{stack.engine}/health").status == 200
    # WHEN the CLI runs in another shell, with neither variable set
    assert stack.state_dir is not None
    unset = ("KYPERIAN_API_KEY", "KYPERIAN_ENGINE_TOKEN")
    shell = {k: v for k, v in os.environ.items() if k not in unset}
    shell["KYPERIAN_LOCAL_STATE_DIR"] = str(stack.state_dir)
    cli = [sys.executable, "-m", "kyperian.cli"]
    read = subprocess.run(  # noqa: S603 - our own CLI
        [*cli, "decisions", "E2EF", "--json", "--engine", stack.engine],
        env=shell, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    sent = subprocess.run(  # noqa: S603 - our own CLI
        [*cli, "send", "E2EF", "buy", "4h", "--url", stack.gateway],
        env=shell, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    # THEN both find what `kyperian up` kept, in owner-only files
    assert read.returncode == 0, read.stdout + read.stderr
    assert json.loads(read.stdout)["symbol"] == "E2EF"
    assert sent.returncode == 0, sent.stdout + sent.stderr
    for name in ("api-key", "engine-token"):
        assert (stack.state_dir / name).stat().st_mode & 0o777 == 0o600
    # AND the engine logged each request, the caller named, the token never
    engine_log = (stack.log_dir / "engine.log").read_text()
    assert '"caller":"bearer:current"' in engine_log
    assert '"path":"/decisions/E2EF","status":401' in engine_log
    assert stack.engine_token not in engine_log


def test_a_rotated_engine_token_is_read_from_secrets_manager_with_a_grace(stack: Stack) -> None:
    # GIVEN the engine reading its token from the emulator's Secrets Manager, as on AWS
    secrets = boto3.client(
        "secretsmanager", endpoint_url=stack.aws_endpoint, region_name="us-east-1",
        aws_access_key_id="local", aws_secret_access_key="local",
    )  # fmt: skip
    url = f"{stack.engine}/health/details"
    # WHEN the token is rotated
    new = "rotated-e2e-engine-token-0123456789"
    secrets.put_secret_value(SecretId="/kyperian/local/engine/token", SecretString=new)
    # THEN the new one works once the engine's cache expires (5 s locally)...
    deadline = time.monotonic() + 20
    while request("GET", url, bearer=new).status != 200:
        assert time.monotonic() < deadline, "the rotated token was never accepted"
        time.sleep(0.5)
    # ... and the previous one keeps working during the grace period
    assert request("GET", url, bearer=stack.engine_token).status == 200
    assert request("GET", url, bearer="not-the-token-at-all-000000").status == 401


def test_ctrl_c_leaves_no_process_behind(stack: Stack) -> None:
    # WHEN the user presses Ctrl-C
    pids = stack.pids()
    # THEN the command exits, every child is gone and every port is free
    assert stack.stop() == 0
    for name, pid in pids.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert name
    assert not any(port_open(p) for p in (stack.aws_port, stack.gateway_port, stack.engine_port))
