"""The exactly-once drill: one alert, many deliveries and faults, one decision and one order.

``make drill`` runs it (``python -m scripts.drill_exactly_once``); the integration test
``tests/integration/execution/test_exactly_once_drill.py`` runs the same function. It
starts an AWS emulator (moto server, the real ``data.yaml`` and ``messaging.yaml``
deployed into it) and a redis-server, then builds engines with the service's own wiring
(``build_services``, auto-trading on, the paper venue in the ledger) and delivers each
scenario's alert three times, as SQS would deliver the EventBridge envelope (each
redelivery carries a later ``received_at``, as the webhook republishes it):

==================  =========================================================================
scenario            faults
==================  =========================================================================
redis-up            none: the Redis marker and the tables both dedupe
redis-down          the engine's Redis port is closed: only the tables dedupe
cache-flush         FLUSHALL after the first delivery: the marker is gone
two-processes       two engine *processes* (spawned) take deliveries at the same moment,
                    then a third delivery
crash-before-venue  the engine dies after recording the intent, before the venue call
crash-after-venue   the engine dies after the venue filled the order, before the ledger knew
==================  =========================================================================

A crashed engine is replaced by a new one (a restart) and the message comes back after
its visibility timeout, as on ECS. Then it counts from the sources of truth, never from
return values: decision rows per signal in the Decisions table, orders per decision in
the ledger and at the venue, actionable decisions with neither a settled order nor a
recorded refusal, and each symbol's exposure at the venue against the fusion cap. It
prints ``decisions_per_signal=1 orders_per_signal=1 actionable_untraded=0
combined_exposure<=cap`` when all hold; exit code 0 then, 1 otherwise.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import boto3
import redis
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

if __package__ in (None, ""):  # run as a file: make `scripts` and `src` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kyperian.adapters.aws.decisions import decision_pk, item_to_decision
from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.adapters.aws.paper_venue import DynamoPaperVenueStore
from kyperian.domain.brokers import Broker, Order, OrderRequest
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import QueueMessage
from kyperian.domain.models import Signal, iso_utc
from kyperian.engine.services import EngineServices, build_services
from kyperian.engine.telemetry import logger
from kyperian.execution import AccountKey, OrderState
from kyperian.local.resources import SERVICES, provision
from kyperian.settings import Settings

ENVIRONMENT: Final = "drill"
VISIBILITY_SECONDS: Final = 5
LEASE_SECONDS: Final = 2
_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "drill",
    "AWS_SECRET_ACCESS_KEY": "drill",  # the emulator accepts any credentials
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_METRICS_DISABLED": "true",
}


class SimulatedCrash(BaseException):
    """The engine process dies here: nothing after this point runs."""


class CrashingVenue(Broker):
    """The paper venue, with a death injected just before or just after a submit."""

    name = "paper"

    def __init__(self, inner: Broker, when: str) -> None:
        self.inner = inner
        self.when = when

    @property
    def caps(self) -> Any:
        return self.inner.caps

    def _submit(self, request: OrderRequest) -> Order:
        if self.when == "before":
            raise SimulatedCrash("between the intent and the venue call")
        self.inner.submit_order(request)
        raise SimulatedCrash("between the venue's acceptance and the ledger update")

    def account(self) -> Any:
        return self.inner.account()

    def positions(self) -> Any:
        return self.inner.positions()

    def get_order(self, order_id: str) -> Order:
        return self.inner.get_order(order_id)

    def find_order(self, client_order_id: str) -> Order | None:
        return self.inner.find_order(client_order_id)

    def cancel_order(self, order_id: str) -> Order:
        return self.inner.cancel_order(order_id)

    def open_orders(self) -> list[Order]:
        return self.inner.open_orders()

    def check(self) -> None:
        self.inner.check()


@dataclass(frozen=True)
class Counts:
    """What the drill counted from the tables and the venue."""

    decisions_per_signal: int
    orders_per_signal: int
    actionable_untraded: int
    max_exposure: float
    cap: float
    outcomes: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return (
            self.decisions_per_signal == 1
            and self.orders_per_signal == 1
            and self.actionable_untraded == 0
            and self.max_exposure <= self.cap + 1e-9
        )

    def line(self) -> str:
        exposure = (
            "combined_exposure<=cap"
            if self.max_exposure <= self.cap + 1e-9
            else (f"combined_exposure={self.max_exposure:.4f}>cap={self.cap:.4f}")
        )
        return (
            f"decisions_per_signal={self.decisions_per_signal} "
            f"orders_per_signal={self.orders_per_signal} "
            f"actionable_untraded={self.actionable_untraded} {exposure}"
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _redis_server() -> Iterator[int]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port, socket_connect_timeout=0.2)
            for _ in range(100):
                with suppress(redis.ConnectionError):
                    if client.ping():
                        break
                time.sleep(0.05)
            client.close()
            yield port
        finally:
            process.terminate()
            process.wait(timeout=5)


class _OneAtATime:
    """The emulator answers one request at a time: moto's ``TransactWriteItems`` copies
    the tables while another thread's write changes them ("dictionary changed size during
    iteration", a 500 no DynamoDB would give), and the drills run engines in parallel."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        with self._lock:
            return list(self._app(environ, start_response))


@contextmanager
def _emulator() -> Iterator[str]:
    port = _free_port()
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="emulator", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        yield endpoint
    finally:  # moto's state is this process's: leave none for the next drill or test
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with suppress(OSError):
            urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - http, just started
        server.shutdown()
        thread.join(timeout=10)


def _settings(endpoint: str, redis_port: int) -> dict[str, Any]:
    return {
        "environment": ENVIRONMENT,
        "aws_endpoint_url": endpoint,
        "redis_port": redis_port,
        "redis_socket_timeout": 0.2,
        "auto_trading": True,
        "approval_mode": False,
        "worker_enabled": False,
        "worker_visibility_seconds": VISIBILITY_SECONDS,
        "order_lease_seconds": LEASE_SECONDS,
        "aws_read_timeout": 5.0,
    }


def _signal(symbol: str, timeframe: str, source: str, received_at: datetime, sid: str) -> Signal:
    moment = received_at.replace(microsecond=0)
    return Signal(
        signal_id=sid, symbol=symbol, action="STRONG_BUY", timeframe=timeframe, source=source,
        price=100.0, confidence=100.0, timestamp=moment, key_time=moment,
        received_at=received_at, ttl=int((moment + timedelta(days=7)).timestamp()),
    )  # fmt: skip


def _envelope(signal: Signal) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SignalValidated",
            "source": "kyperian.signal.validator",
            "time": iso_utc(signal.received_at),
            "region": "us-east-1",
            "resources": [],
            "detail": signal.to_event_detail(),
        }
    )


def _deliver(services: EngineServices, signal: Signal, attempt: int) -> str:
    """One SQS delivery of the signal's envelope, republished ``attempt - 1`` times."""
    redelivered = signal.model_copy(
        update={"received_at": signal.received_at + timedelta(milliseconds=700 * (attempt - 1))}
    )
    message = QueueMessage(f"m-{uuid.uuid4()}", "r", _envelope(redelivered), attempt)
    try:
        return services.processor.handle(message).outcome.value
    except SimulatedCrash:
        return "CRASHED"


@contextmanager
def _environment() -> Iterator[None]:
    """The drill's credentials and settings in the environment, restored afterwards."""
    saved = {name: os.environ.get(name) for name in _CREDENTIALS}
    os.environ.update(_CREDENTIALS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _quiet() -> Iterator[None]:
    """Only warnings from the engine and none from the emulator's request log, meanwhile."""
    werkzeug = logging.getLogger("werkzeug")
    levels = (werkzeug.level, logger.log_level)
    werkzeug.setLevel(logging.ERROR)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        werkzeug.setLevel(levels[0])
        logger.setLevel(levels[1])


def _child(kwargs: dict[str, Any], body: str, barrier: Any, results: Any) -> None:
    """An engine process: its own wiring, one delivery, released at the same moment as its twin."""
    os.environ.update(_CREDENTIALS)
    logger.setLevel(logging.WARNING)  # a child process of its own: nothing to restore
    services = build_services(Settings(**kwargs))
    if services.execution is not None:
        services.execution.open()  # warm, as a running task is
    barrier.wait(timeout=60)
    message = QueueMessage(f"m-{uuid.uuid4()}", "r", body, 1)
    results.put(services.processor.handle(message).outcome.value)
    services.close()


def _two_processes(kwargs: dict[str, Any], signal: Signal) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    bodies = [
        _envelope(signal),
        _envelope(
            signal.model_copy(
                update={"received_at": signal.received_at + timedelta(milliseconds=300)}
            )
        ),
    ]
    children = [
        context.Process(target=_child, args=(kwargs, body, barrier, results)) for body in bodies
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    return outcomes


def run(report: Callable[[str], None] = print) -> Counts:
    """Run every scenario and count; ``report`` gets one line per scenario and the verdict."""
    with _environment(), _quiet(), _emulator() as endpoint, _redis_server() as redis_port:
        session: Any = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name, endpoint_url=endpoint) for name in SERVICES}
        made = provision(clients, ENVIRONMENT, f"drill-{uuid.uuid4().hex}")
        kwargs = _settings(endpoint, redis_port)
        signals_store = DynamoSignalStore(made.signals_table, clients["dynamodb"])
        outcomes: dict[str, list[str]] = {}
        triggers: list[Signal] = []

        def scenario(name: str, symbol: str) -> Signal:
            now = datetime.now(UTC)
            signals_store.add(_signal(symbol, "1D", "technicals", now, f"{name}-anchor"))
            trigger = _signal(symbol, "4h", "luxalgo", now, f"{name}-trigger")
            signals_store.add(trigger)
            triggers.append(trigger)
            return trigger

        def engine(**overrides: Any) -> EngineServices:
            return build_services(Settings(**{**kwargs, **overrides}))

        # redis-up: three deliveries to one engine
        trigger = scenario("redis-up", "AAPL")
        up = engine()
        outcomes["redis-up"] = [_deliver(up, trigger, n) for n in (1, 2, 3)]

        # redis-down: the engine's Redis is unreachable (degraded mode)
        trigger = scenario("redis-down", "MSFT")
        down = engine(redis_port=_free_port())
        outcomes["redis-down"] = [_deliver(down, trigger, n) for n in (1, 2, 3)]

        # cache-flush: the processed marker disappears after the first delivery
        trigger = scenario("cache-flush", "NVDA")
        outcomes["cache-flush"] = [_deliver(up, trigger, 1)]
        redis.Redis(port=redis_port).flushall()
        outcomes["cache-flush"] += [_deliver(engine(), trigger, n) for n in (2, 3)]

        # two-processes: two spawned engines at the same moment, then a third delivery
        trigger = scenario("two-processes", "AMZN")
        outcomes["two-processes"] = _two_processes(kwargs, trigger)
        outcomes["two-processes"].append(_deliver(engine(), trigger, 3))

        # crashes: the engine dies at each dangerous point; a new one gets the redeliveries
        for name, symbol, when in (
            ("crash-before-venue", "TSLA", "before"),
            ("crash-after-venue", "META", "after"),
        ):
            trigger = scenario(name, symbol)
            doomed = engine()
            if doomed.execution is None:
                raise RuntimeError("the engine was built without execution")
            doomed.execution.venue = CrashingVenue(doomed.execution.venue, when)
            outcomes[name] = [_deliver(doomed, trigger, 1)]
            time.sleep(VISIBILITY_SECONDS + 0.5)  # the message comes back after its visibility
            restarted = engine()
            outcomes[name] += [_deliver(restarted, trigger, n) for n in (2, 3)]

        for name, seen in outcomes.items():
            report(f"{name:20s} deliveries: {' '.join(seen)}")
        counts = _count(
            clients["dynamodb"],
            made.decisions_table,
            made.ledger_table,
            triggers,
            Settings(**kwargs),
            outcomes,
        )
    report(counts.line())
    return counts


def _count(
    dynamodb: Any,
    decisions_table: str,
    ledger_table: str,
    triggers: list[Signal],
    settings: Settings,
    outcomes: dict[str, list[str]],
) -> Counts:
    """Count from the Decisions table, the ledger and the venue's own books."""
    key = AccountKey(venue="paper", account_id=settings.paper_account_id)
    ledger = DynamoLedger(ledger_table, dynamodb)
    venue_orders = DynamoPaperVenueStore(ledger_table, dynamodb, settings.paper_account_id).orders()
    ledger_orders = ledger.orders(key, limit=10_000)
    decisions_per_signal: list[int] = []
    orders_per_signal: list[int] = []
    untraded = 0
    decided: list[Decision] = []
    for trigger in triggers:
        items = dynamodb.query(
            TableName=decisions_table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": decision_pk(trigger.symbol)}},
            ConsistentRead=True,
        )["Items"]
        mine = [d for d in map(item_to_decision, items) if d.trigger_signal_id == trigger.signal_id]
        decisions_per_signal.append(len(mine))
        decided += mine
    for decision in decided:
        in_ledger = [o for o in ledger_orders if o.decision_id == decision.decision_id]
        at_venue = [o for o in venue_orders if o.client_order_id == decision.decision_id]
        orders_per_signal.append(max(len(in_ledger), len(at_venue)))
        settled = in_ledger and in_ledger[0].state not in {OrderState.INTENT, OrderState.SUBMITTED}
        refused = settled and in_ledger[0].state is OrderState.REJECTED
        if decision.actionable and not (settled and (refused or at_venue)):
            untraded += 1
    prices = {t.symbol: Decimal(repr(t.price)) for t in triggers if t.price}
    book = ledger.book(key)
    equity = book.equity(prices)
    exposure = max(
        (abs(float(p.quantity * prices.get(p.symbol, p.mark()) / equity)) for p in book.positions),
        default=0.0,
    )
    return Counts(
        decisions_per_signal=max(decisions_per_signal, default=0)
        if all(decisions_per_signal)
        else 0,
        orders_per_signal=max(orders_per_signal, default=0) if all(orders_per_signal) else 0,
        actionable_untraded=untraded,
        max_exposure=exposure,
        cap=settings.fusion.max_symbol_exposure,
        outcomes=outcomes,
    )


def main() -> int:
    counts = run()
    return 0 if counts.ok else 1


if __name__ == "__main__":
    sys.exit(main())
