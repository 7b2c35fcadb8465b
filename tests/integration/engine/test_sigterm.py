"""The engine process as ECS runs it: SIGTERM mid-work stops it in time and loses nothing.

Runs uvicorn in a child process against a moto server and a real redis-server, feeds the
queue, sends SIGTERM while messages are being processed, and checks the exit code, the
time taken (ECS kills at 30 s) and that every signal is either decided or still queued.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from kyperian.local.resources import provision
from tests.aws_resources import API_KEY
from tests.integration.engine.conftest import SERVICES, RedisServer, free_port
from tests.signal_factory import envelope, make_signal

pytestmark = pytest.mark.integration

WAIT_SECONDS = 2
STOP_BUDGET_SECONDS = 30


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _clients(endpoint: str) -> dict[str, Any]:
    return {
        name: boto3.client(name, region_name="us-east-1", endpoint_url=endpoint)
        for name in SERVICES
    }


def _wait_for_health(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"engine exited early with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local test URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("engine did not become healthy")


def _decided(clients: dict[str, Any], table: str) -> set[str]:
    items = clients["dynamodb"].scan(TableName=table)["Items"]
    return {i["trigger_signal_id"]["S"] for i in items if i["PK"]["S"].startswith("DECISION#")}


def _queued(clients: dict[str, Any], queue_url: str) -> set[str]:
    ids: set[str] = set()
    while (
        batch := clients["sqs"]
        .receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=120
        )
        .get("Messages")
    ):
        ids |= {json.loads(m["Body"])["detail"]["signal_id"] for m in batch}
    return ids


def test_sigterm_stops_the_engine_in_time_without_losing_a_message(
    moto_endpoint: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    # GIVEN the AWS resources, and the engine process running as the container runs it
    clients = _clients(moto_endpoint)
    made = provision(clients, "test", API_KEY)
    port = free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "KYPERIAN_ENVIRONMENT": "test",
        "KYPERIAN_AWS_ENDPOINT_URL": moto_endpoint,
        "KYPERIAN_SIGNAL_QUEUE_URL": made.queue_url,
        "KYPERIAN_REDIS_PORT": str(redis_server.port),
        "KYPERIAN_WORKER_WAIT_SECONDS": str(WAIT_SECONDS),
        "KYPERIAN_WORKER_BATCH_SIZE": "2",
    }
    log = (tmp_path / "engine.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - the test's own interpreter and module
        [sys.executable, "-m", "uvicorn", "kyperian.engine.main:app", "--host", "127.0.0.1",
         "--port", str(port), "--timeout-graceful-shutdown", "3", "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_for_health(f"http://127.0.0.1:{port}/health", process)

        # WHEN forty signals arrive and SIGTERM comes while they are being processed
        now = datetime.now(UTC)
        signals = [
            make_signal(at=now, signal_id=f"term-{i:02d}", timeframe="4h") for i in range(40)
        ]
        for item in signals:
            clients["sqs"].send_message(QueueUrl=made.queue_url, MessageBody=envelope(item))
        deadline = time.monotonic() + 20
        while not _decided(clients, made.decisions_table) and time.monotonic() < deadline:
            time.sleep(0.05)
        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=STOP_BUDGET_SECONDS + 5)
        took = time.monotonic() - sent_at
    finally:
        if process.poll() is None:
            process.kill()
        log.close()

    # THEN it shut down cleanly within the budget (uvicorn re-raises SIGTERM once done, so the
    # exit status is "terminated by SIGTERM", what ECS expects), and nothing was lost
    output = (tmp_path / "engine.log").read_text()
    assert code in {0, -signal.SIGTERM}, output[-2000:]
    assert "Application shutdown complete" in output
    assert took < STOP_BUDGET_SECONDS
    decided = _decided(clients, made.decisions_table)
    assert decided, "nothing was processed before SIGTERM"
    assert decided | _queued(clients, made.queue_url) == {s.signal_id for s in signals}
    assert '"message":"worker stopped"' in output
