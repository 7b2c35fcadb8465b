"""Real redis-server processes and moto-backed AWS for the engine's integration tests.

``redis_server`` starts one ``redis-server`` for the session on a free port, with no
persistence, waits for it with a bounded retry and stops it at the end; tests that need
to kill Redis start their own ``RedisServer``. ``engine_aws`` creates, in in-process
moto, the Signals and Decisions tables and the work queue with its dead-letter queue by
deploying the real templates (``kyperian.local.resources.provision``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import boto3
import pytest
import redis
from moto import mock_aws

from kyperian.local import resources
from kyperian.local.resources import provision
from tests.aws_resources import API_KEY

REGION = "us-east-1"
SERVICES: tuple[Any, ...] = resources.SERVICES
REDIS_BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One redis-server child process on a fixed port that tests can stop and restart."""

    def __init__(
        self, directory: Path, port: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, ping: bool = True) -> RedisServer:
        if not Path(REDIS_BINARY).exists():
            pytest.skip("redis-server is not installed (make redis)")
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [REDIS_BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if ping:
            self._wait_until_ready()
        return self

    def _wait_until_ready(self, attempts: int = 100, pause: float = 0.05) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(attempts):
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(pause)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)
        self._process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the session server, emptied before each test."""
    client = redis.Redis(port=redis_server.port, socket_timeout=1)
    client.flushall()
    yield client
    client.close()


def ttl(client: redis.Redis, key: str | bytes) -> int:
    """Seconds left on a key (-1: no TTL, -2: no key)."""
    return cast(int, client.ttl(key))


@dataclass
class EngineAws:
    dynamodb: Any
    sqs: Any
    signals_table: str
    decisions_table: str
    queue_url: str
    dlq_url: str
    ledger_table: str = ""

    @property
    def max_receive_count(self) -> int:
        """The work queue's redrive ``maxReceiveCount``, as the template set it."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])


@pytest.fixture
def engine_aws() -> Iterator[EngineAws]:
    """In-process moto with the tables, bus, rule and queue (+ DLQ) the stacks create."""
    with mock_aws():
        clients = {name: boto3.client(name, region_name=REGION) for name in SERVICES}
        made = provision(clients, "test", API_KEY)
        yield EngineAws(
            clients["dynamodb"],
            clients["sqs"],
            made.signals_table,
            made.decisions_table,
            made.queue_url,
            made.dlq_url,
            made.ledger_table,
        )
