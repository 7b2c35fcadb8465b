"""An engine wired to in-memory ports, a fixed clock, and a reader for emitted metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import pytest

from kyperian.adapters.brokers.paper import PaperBroker
from kyperian.engine.degraded import CacheCircuit
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.telemetry import EngineMetrics, logger
from kyperian.fusion import FusionRules
from tests.signal_factory import NOW
from tests.unit.engine.fakes import (
    MemoryCache,
    MemoryDecisions,
    MemoryHistory,
    MemoryPaperStore,
)


class Ticker:
    """A clock tests move by hand: wall time for decisions, monotonic for the circuit."""

    def __init__(self) -> None:
        self.now = NOW + timedelta(seconds=1)
        self.monotonic = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic += seconds

    def wall(self) -> datetime:
        return self.now

    def mono(self) -> float:
        return self.monotonic


@dataclass
class Engine:
    processor: SignalProcessor
    cache: MemoryCache
    decisions: MemoryDecisions
    history: MemoryHistory
    circuit: CacheCircuit
    broker: PaperBroker
    clock: Ticker


def build_engine(rules: FusionRules | None = None) -> Engine:
    """The processor on in-memory ports; trading through the ledger is tested on moto
    (tests/integration/execution)."""
    clock = Ticker()
    cache, decisions, history = MemoryCache(), MemoryDecisions(), MemoryHistory()
    circuit = CacheCircuit(retry_seconds=5, clock=clock.mono)
    broker = PaperBroker(MemoryPaperStore(), clock=clock.wall)
    processor = SignalProcessor(
        cache=cache,
        processed=cache,
        decisions=decisions,
        history=history,
        rules=rules or FusionRules(),
        circuit=circuit,
        metrics=EngineMetrics("test"),
        lease_seconds=60,
        clock=clock.wall,
    )
    return Engine(processor, cache, decisions, history, circuit, broker, clock)


@pytest.fixture
def engine() -> Engine:
    return build_engine()


def emitted_metrics(output: str) -> list[dict[str, Any]]:
    """The EMF documents printed on stdout, one dict per metric."""
    documents = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_names(output: str) -> list[str]:
    names = []
    for doc in emitted_metrics(output):
        names += [m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    return names


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    """Where the engine's JSON log lines go during the test."""
    buffer = io.StringIO()
    handler = cast(logging.StreamHandler, logger.registered_handler)  # type: ignore[type-arg]
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def log_records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line]
