"""A received batch through the queue worker: one lane at a time against ten side by side.

Ten messages on ten symbols, decisions stored in the local DynamoDB emulator (a real
network call per decision, as on ECS) and the cache in a real redis-server: the time of
``QueueWorker.run_once`` per batch with ``concurrency`` 1 and 10. The lanes overlap the
waits on DynamoDB and Redis; the same symbol never runs twice at once (unit tests).

Run through ``make bench`` (from ``benchmarks.bench_engine``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.domain.engine_ports import QueueMessage, WorkQueue
from kyperian.engine.worker import QueueWorker
from kyperian.local.supervisor import free_port
from kyperian.local.templates import deploy

from .bench_engine import _envelope, _processor, _quiet, _signal
from .timing import Figures, measure

BATCH = 10
RUNS, WARMUP = 60, 10


class Batches(WorkQueue):
    """Hands out prepared batches of ten; deletes and releases are no-ops (port, not SQS)."""

    def __init__(self, batches: list[list[QueueMessage]]) -> None:
        self._batches = iter(batches)

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueueMessage]:
        return next(self._batches)

    def delete(self, messages: Sequence[QueueMessage]) -> list[str]:
        return []

    def release(self, messages: Sequence[QueueMessage]) -> None:
        return None

    def check(self) -> None:
        return None


@contextlib.contextmanager
def _emulator() -> Iterator[str]:
    """The local DynamoDB emulator on a free port, with the real Decisions table."""
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed argv
        [sys.executable, "-m", "kyperian.local.emulator", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=1).close()  # noqa: S310
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _client(service: str, url: str) -> Any:
    session: Any = boto3.session.Session()  # typed per service by callers, not here
    return session.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - the emulator takes any credentials
        config=Config(max_pool_connections=20),
    )


def _batches(count: int, start: int) -> list[list[QueueMessage]]:
    now = datetime.now(UTC)
    return [
        [
            QueueMessage(
                f"m-{n}-{i}",
                f"r-{n}-{i}",
                _envelope(_signal(start + n * BATCH + i, now, symbol=f"B{i:02d}")),
                1,
            )
            for i in range(BATCH)
        ]
        for n in range(count)
    ]


def bench_batches(redis_port: int) -> list[Figures]:
    rows = []
    with _emulator() as url:
        outputs = deploy(_client("cloudformation", url), "data", "bench")
        decisions = DynamoDecisionStore(outputs["DecisionsTableName"], _client("dynamodb", url))
        for lanes in (1, BATCH):
            processor = _processor(redis_port, decisions)
            queue = Batches(_batches(RUNS + WARMUP, start=lanes * 100_000))
            worker = QueueWorker(queue, processor, concurrency=lanes)

            def one(_i: int, worker: QueueWorker = worker) -> object:
                return worker.run_once()

            with _quiet():
                figures = measure(
                    f"worker: batch of {BATCH} symbols, DynamoDB emulator, {lanes} lane(s)",
                    one,
                    runs=RUNS,
                    warmup=WARMUP,
                    report=False,
                )
            rows.append(figures)
    return rows
